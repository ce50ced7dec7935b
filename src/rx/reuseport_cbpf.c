/*
 * reuseport_cbpf.c: emits, interprets and attaches the classic BPF program that picks a
 * reactor's listener from the receive queue of a new connection (see reuseport_cbpf.h).
 *
 * Program shape for list = {q0, q1, ..., qn-1}:
 *     0        ld  [SKF_AD_OFF + SKF_AD_QUEUE]     A = receive queue of the skb
 *     1+i      jeq #qi, -> ret_i                    one compare per reactor
 *     1+n      mod #n                              not in the list: A = queue % n
 *     2+n      ret A
 *     3+n+i    ret #i                               ret_i
 */
#include "reuseport_cbpf.h"

#include "number_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

uint32_t reuseport_queue_to_reactor(uint32_t queue, const uint32_t *list, uint32_t count) {
    INTAKE_ASSERT(count > 0 && count <= REUSEPORT_REACTORS_MAX);
    INTAKE_ASSERT(list != NULL);
    for (uint32_t index = 0; index < count; index++)
        if (list[index] == queue) return index;
    return queue % count;
}

static struct sock_filter reuseport_cbpf_instruction(uint16_t code, uint8_t jump_true,
                                                     uint8_t jump_false, uint32_t k) {
    struct sock_filter result = {code, jump_true, jump_false, k};
    return result;
}

uint32_t reuseport_cbpf_build(const uint32_t *list, uint32_t count, struct sock_filter *program) {
    INTAKE_ASSERT(count > 0 && count <= REUSEPORT_REACTORS_MAX);
    INTAKE_ASSERT(list != NULL && program != NULL);
    uint32_t length = 0;
    uint32_t queue_field = (uint32_t)(SKF_AD_OFF + SKF_AD_QUEUE);
    program[length++] = reuseport_cbpf_instruction(BPF_LD | BPF_W | BPF_ABS, 0, 0, queue_field);
    for (uint32_t index = 0; index < count; index++) {
        /* From compare i (at 1+i) to ret_i (at 3+n+i): skip the rest of this instruction's
         * successors, which is always n + 1 instructions. */
        uint8_t to_return = (uint8_t)(count + 1);
        program[length++] =
            reuseport_cbpf_instruction(BPF_JMP | BPF_JEQ | BPF_K, to_return, 0, list[index]);
    }
    program[length++] = reuseport_cbpf_instruction(BPF_ALU | BPF_MOD | BPF_K, 0, 0, count);
    program[length++] = reuseport_cbpf_instruction(BPF_RET | BPF_A, 0, 0, 0);
    for (uint32_t index = 0; index < count; index++)
        program[length++] = reuseport_cbpf_instruction(BPF_RET | BPF_K, 0, 0, index);
    INTAKE_ASSERT(length == 3 + 2 * count);
    INTAKE_ASSERT(length <= REUSEPORT_CBPF_INSTRUCTIONS_MAX);
    return length;
}

int64_t reuseport_cbpf_run(const struct sock_filter *program, uint32_t length, uint32_t queue) {
    INTAKE_ASSERT(program != NULL && length > 0);
    uint32_t accumulator = 0;
    for (uint32_t pc = 0; pc < length; pc++) {
        const struct sock_filter *op = &program[pc];
        switch (op->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (op->k != (uint32_t)(SKF_AD_OFF + SKF_AD_QUEUE)) return -1;
            accumulator = queue;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += accumulator == op->k ? op->jt : op->jf; break;
        case BPF_ALU | BPF_MOD | BPF_K:
            if (op->k == 0) return -1;
            accumulator %= op->k;
            break;
        case BPF_RET | BPF_A: return accumulator;
        case BPF_RET | BPF_K: return op->k;
        default: return -1;
        }
    }
    return -1; /* ran off the end: the kernel's checker would have refused the program */
}

int reuseport_cbpf_attach(int socket_fd, const uint32_t *list, uint32_t count) {
    INTAKE_ASSERT(socket_fd >= 0);
    struct sock_filter instructions[REUSEPORT_CBPF_INSTRUCTIONS_MAX];
    struct sock_fprog program = {
        .len = (unsigned short)reuseport_cbpf_build(list, count, instructions),
        .filter = instructions,
    };
    if (setsockopt(socket_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof(program)) != 0)
        return -errno;
    return 0;
}

int reuseport_parse_queue_list(const char *text, uint32_t *list, uint32_t capacity) {
    INTAKE_ASSERT(text != NULL && list != NULL);
    const struct number_spec queue_spec = NUMBER_COUNT_SPEC(0, UINT16_MAX);
    uint32_t count = 0;
    for (const char *cursor = text;;) {
        /* Each item in the one number syntax (number_parse.h), cut out at its comma. */
        size_t length = strcspn(cursor, ",");
        char item[16];
        uint64_t value = 0;
        if (length >= sizeof(item) || count == capacity) return -EINVAL;
        memcpy(item, cursor, length);
        item[length] = '\0';
        if (number_parse("--zcrx-queues", item, &queue_spec, &value, NULL, 0) != NUMBER_OK)
            return -EINVAL;
        for (uint32_t index = 0; index < count; index++)
            if (list[index] == value) return -EINVAL;
        list[count++] = (uint32_t)value;
        if (cursor[length] == '\0') return (int)count;
        cursor += length + 1;
    }
}
