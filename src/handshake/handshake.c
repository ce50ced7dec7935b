/*
 * handshake.c: the handshake threads and the queues to and from them (see handshake.h).
 *
 * A handshake thread owns nothing between jobs but the SSL objects of the slots it was handed;
 * it sleeps on its request queue's condition variable, runs one OpenSSL step per job, and hands
 * each slot back on its reactor's answer queue, ringing the reactor's doorbell.
 */
#include "handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Slots one pass takes from the request queue. */
#define HANDSHAKE_BATCH_MAX 32

struct handshake_thread {
    struct handshake_links links;
    pthread_t thread;
    bool started;
};

/* ---------------------------------------------------------------------- queues --- */

int handshake_queue_init(struct handshake_queue *queue, uint32_t capacity) {
    INTAKE_ASSERT(capacity > 0);
    memset(queue, 0, sizeof(*queue));
    queue->entries = calloc(capacity, sizeof(*queue->entries));
    if (queue->entries == NULL) return -ENOMEM;
    queue->capacity = capacity;
    pthread_mutex_init(&queue->lock, NULL);
    pthread_cond_init(&queue->nonempty, NULL);
    return 0;
}

void handshake_queue_destroy(struct handshake_queue *queue) {
    if (queue->entries == NULL) return;
    pthread_cond_destroy(&queue->nonempty);
    pthread_mutex_destroy(&queue->lock);
    free(queue->entries);
    queue->entries = NULL;
}

void handshake_queue_push(struct handshake_queue *queue, struct handshake_slot *slot) {
    INTAKE_ASSERT(slot != NULL);
    pthread_mutex_lock(&queue->lock);
    INTAKE_ASSERT(queue->count < queue->capacity);
    queue->entries[(queue->head + queue->count) % queue->capacity] = slot;
    queue->count++;
    /* Pairs with the acquire load in handshake_queue_pop's lock-free look. */
    atomic_store_explicit(&queue->approximate_count, queue->count, memory_order_release);
    pthread_cond_signal(&queue->nonempty);
    pthread_mutex_unlock(&queue->lock);
}

uint32_t handshake_queue_pop(struct handshake_queue *queue, struct handshake_slot **out,
                             uint32_t capacity) {
    /* An empty queue is the common case on a reactor: no lock for it. A push racing with this
     * read is seen at the next look: the pusher rings the doorbell after its release store. */
    if (atomic_load_explicit(&queue->approximate_count, memory_order_acquire) == 0) return 0;
    pthread_mutex_lock(&queue->lock);
    uint32_t taken = 0;
    while (taken < capacity && queue->count > 0) {
        out[taken++] = queue->entries[queue->head];
        queue->head = (queue->head + 1) % queue->capacity;
        queue->count--;
    }
    /* Only ever lowered here, under the lock; the next push stores the true count again. */
    atomic_store_explicit(&queue->approximate_count, queue->count, memory_order_relaxed);
    pthread_mutex_unlock(&queue->lock);
    return taken;
}

const char *handshake_failure_name(enum handshake_failure failure) {
    switch (failure) {
    case HANDSHAKE_FAILURE_TIMEOUT: return "timeout";
    case HANDSHAKE_FAILURE_NO_CLIENT_CERT: return "no_client_certificate";
    case HANDSHAKE_FAILURE_BAD_CERT: return "bad_certificate";
    case HANDSHAKE_FAILURE_NOT_TLS: return "not_tls";
    case HANDSHAKE_FAILURE_PROTOCOL: return "protocol";
    case HANDSHAKE_FAILURE_PRINCIPAL: return "principal";
    case HANDSHAKE_FAILURE_OTHER: return "other";
    case HANDSHAKE_FAILURES: break;
    }
    return "unknown";
}

/* ------------------------------------------------------------------- callbacks --- */

static struct handshake_slot *handshake_slot_of(const SSL *ssl) {
    struct handshake_slot *slot = SSL_get_app_data(ssl);
    INTAKE_ASSERT(slot != NULL);
    return slot;
}

/* "LABEL <client random hex> <secret hex>": keeps the application traffic secrets. */
static void handshake_keylog(const SSL *ssl, const char *line) {
    struct handshake_slot *slot = handshake_slot_of(ssl);
    uint8_t *secret = NULL;
    uint8_t *secret_bytes = NULL;
    static const char client_label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    static const char server_label[] = "SERVER_TRAFFIC_SECRET_0 ";
    if (strncmp(line, client_label, sizeof(client_label) - 1) == 0) {
        secret = slot->client_secret;
        secret_bytes = &slot->client_secret_bytes;
    } else if (strncmp(line, server_label, sizeof(server_label) - 1) == 0) {
        secret = slot->server_secret;
        secret_bytes = &slot->server_secret_bytes;
    } else {
        return;
    }
    const char *hex = strrchr(line, ' ');
    INTAKE_ASSERT(hex != NULL);
    hex++;
    size_t digits = strlen(hex);
    *secret_bytes = 0;
    if (digits % 2 != 0 || digits / 2 > TLS_SECRET_BYTES_MAX) return;
    for (size_t index = 0; index < digits / 2; index++) {
        unsigned value = 0;
        if (sscanf(hex + 2 * index, "%2x", &value) != 1) return;
        secret[index] = (uint8_t)value;
    }
    *secret_bytes = (uint8_t)(digits / 2);
}

/* The principal a client certificate names: its first URI SAN, else its subject's CN. Returns
 * false when it names none (or one principal_set refuses: empty, too long, a NUL inside). */
static bool handshake_principal_of(X509 *certificate, struct principal *principal) {
    GENERAL_NAMES *names = X509_get_ext_d2i(certificate, NID_subject_alt_name, NULL, NULL);
    int count = names != NULL ? sk_GENERAL_NAME_num(names) : 0;
    for (int index = 0; index < count; index++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
        if (name->type != GEN_URI) continue;
        const ASN1_IA5STRING *uri = name->d.uniformResourceIdentifier;
        int result = principal_set(principal, (const char *)ASN1_STRING_get0_data(uri),
                                   (uint32_t)ASN1_STRING_length(uri));
        GENERAL_NAMES_free(names);
        return result == 0;
    }
    GENERAL_NAMES_free(names);
    const X509_NAME *subject = X509_get_subject_name(certificate);
    int position = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (position < 0) return false;
    const ASN1_STRING *common_name =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, position));
    unsigned char *utf8 = NULL;
    int length = ASN1_STRING_to_UTF8(&utf8, common_name);
    bool named = length > 0 && principal_set(principal, (const char *)utf8, (uint32_t)length) == 0;
    OPENSSL_free(utf8);
    return named;
}

/* OpenSSL's chain verification stands; on top, the leaf must name a usable principal. */
static int handshake_verify(int verified, X509_STORE_CTX *store) {
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct handshake_slot *slot = handshake_slot_of(ssl);
    if (!verified || X509_STORE_CTX_get_error_depth(store) != 0) return verified;
    if (handshake_principal_of(X509_STORE_CTX_get_current_cert(store), &slot->principal)) return 1;
    slot->principal_refused = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

static const struct tls_server_callbacks handshake_callback_table = {
    .keylog = handshake_keylog,
    .verify = handshake_verify,
};

const struct tls_server_callbacks *handshake_callbacks(void) {
    return &handshake_callback_table;
}

/* ------------------------------------------------------------------------ jobs --- */

/* Why OpenSSL failed the handshake, from its error queue (emptied here). */
static enum handshake_failure handshake_classify(struct handshake_slot *slot) {
    unsigned long error = ERR_peek_error();
    int library = ERR_GET_LIB(error);
    int reason = ERR_GET_REASON(error);
    const char *text = ERR_reason_error_string(error);
    long verify_result = slot->ssl != NULL ? SSL_get_verify_result(slot->ssl) : X509_V_OK;
    if (verify_result != X509_V_OK && !slot->principal_refused)
        intake_error_line(slot->failure_detail, sizeof(slot->failure_detail), "%s (%s)",
                          text ? text : "handshake failed",
                          X509_verify_cert_error_string(verify_result));
    else
        intake_error_line(slot->failure_detail, sizeof(slot->failure_detail), "%s",
                          text ? text : "handshake failed");
    ERR_clear_error();
    if (slot->principal_refused) return HANDSHAKE_FAILURE_PRINCIPAL;
    if (library != ERR_LIB_SSL) return HANDSHAKE_FAILURE_OTHER;
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: return HANDSHAKE_FAILURE_NO_CLIENT_CERT;
    case SSL_R_CERTIFICATE_VERIFY_FAILED: return HANDSHAKE_FAILURE_BAD_CERT;
    }
    /* The peer's own alerts (it gave up on us) are "other"; what OpenSSL refused in the
     * peer's messages (versions, suites, groups, malformed messages) is "protocol". */
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
        return HANDSHAKE_FAILURE_OTHER;
    return HANDSHAKE_FAILURE_PROTOCOL;
}

/* Whatever OpenSSL wants sent, moved into the slot. False when it does not fit. */
static bool handshake_take_output(struct handshake_slot *slot) {
    BIO *output = SSL_get_wbio(slot->ssl);
    size_t pending = BIO_ctrl_pending(output);
    if (pending > HANDSHAKE_OUTPUT_BYTES_MAX - slot->output_bytes) return false;
    if (pending == 0) return true;
    int read = BIO_read(output, slot->output + slot->output_bytes, (int)pending);
    INTAKE_ASSERT(read == (int)pending);
    slot->output_bytes += (uint32_t)read;
    return true;
}

static void handshake_free_ssl(struct handshake_slot *slot) {
    SSL_free(slot->ssl); /* frees its BIOs too */
    slot->ssl = NULL;
    OPENSSL_cleanse(slot->client_secret, sizeof(slot->client_secret));
    OPENSSL_cleanse(slot->server_secret, sizeof(slot->server_secret));
}

static void handshake_fail(struct handshake_slot *slot, enum handshake_failure failure,
                           const char *detail) {
    slot->result = HANDSHAKE_FAILED;
    slot->failure = (uint8_t)failure;
    if (detail != NULL)
        intake_error_line(slot->failure_detail, sizeof(slot->failure_detail), "%s", detail);
    handshake_free_ssl(slot);
}

/* The first job of a handshake: an SSL object with memory BIOs, in the server role. */
static bool handshake_begin(struct tls_server *server, struct handshake_slot *slot) {
    slot->ssl = tls_server_new_ssl(server);
    if (slot->ssl == NULL) return false;
    BIO *input = BIO_new(BIO_s_mem());
    BIO *output = BIO_new(BIO_s_mem());
    if (input == NULL || output == NULL) {
        BIO_free(input);
        BIO_free(output);
        return false;
    }
    SSL_set_bio(slot->ssl, input, output);
    SSL_set_app_data(slot->ssl, slot);
    SSL_set_accept_state(slot->ssl);
    slot->client_secret_bytes = 0;
    slot->server_secret_bytes = 0;
    slot->principal_refused = false;
    slot->principal = *principal_anonymous();
    return true;
}

/* The handshake is done: the record layer's session from the logged secrets. */
static void handshake_finish(struct handshake_slot *slot, uint64_t records_per_key_max) {
    const SSL_CIPHER *cipher = SSL_get_current_cipher(slot->ssl);
    uint16_t suite = cipher != NULL ? SSL_CIPHER_get_protocol_id(cipher) : 0;
    uint32_t secret_bytes = tls_suite_secret_bytes(suite);
    if (secret_bytes == 0 || slot->client_secret_bytes != secret_bytes ||
        slot->server_secret_bytes != secret_bytes) {
        handshake_fail(slot, HANDSHAKE_FAILURE_OTHER, "traffic secrets not logged by OpenSSL");
        return;
    }
    /* The daemon reads what the client writes, and writes with the server's secret. */
    if (tls_session_init(&slot->session, suite, slot->client_secret, slot->server_secret,
                         secret_bytes, records_per_key_max) < 0) {
        handshake_fail(slot, HANDSHAKE_FAILURE_OTHER, "record layer keys could not be set");
        return;
    }
    slot->result = HANDSHAKE_DONE;
    handshake_free_ssl(slot);
}

void handshake_run_job(struct tls_server *server, uint64_t records_per_key_max,
                       struct handshake_slot *slot) {
    slot->output_bytes = 0;
    slot->failure_detail[0] = '\0';
    if (slot->job == HANDSHAKE_JOB_ABANDON) {
        handshake_free_ssl(slot);
        slot->result = HANDSHAKE_ABANDONED;
        return;
    }
    INTAKE_ASSERT(slot->job == HANDSHAKE_JOB_STEP);
    INTAKE_ASSERT(slot->input_bytes > 0 && slot->input_bytes <= sizeof(slot->input));
    if (slot->ssl == NULL && !handshake_begin(server, slot)) {
        handshake_fail(slot, HANDSHAKE_FAILURE_OTHER, "OpenSSL could not start a handshake");
        return;
    }
    int written = BIO_write(SSL_get_rbio(slot->ssl), slot->input, (int)slot->input_bytes);
    INTAKE_ASSERT(written == (int)slot->input_bytes);
    int done = SSL_do_handshake(slot->ssl);
    int error = done == 1 ? SSL_ERROR_NONE : SSL_get_error(slot->ssl, done);
    /* Whatever happened, OpenSSL's output goes out first: a flight, or its alert. */
    bool output_fits = handshake_take_output(slot);
    if (!output_fits) {
        ERR_clear_error();
        handshake_fail(slot, HANDSHAKE_FAILURE_OTHER, "server flight exceeds 64 KiB");
    } else if (done == 1) {
        handshake_finish(slot, records_per_key_max);
    } else if (error == SSL_ERROR_WANT_READ) {
        slot->result = HANDSHAKE_CONTINUE;
    } else {
        enum handshake_failure failure = handshake_classify(slot);
        handshake_fail(slot, failure, NULL);
    }
}

/* ---------------------------------------------------------------------- thread --- */

static void *handshake_thread_main(void *argument) {
    struct handshake_thread *thread = argument;
    struct handshake_links *links = &thread->links;
    struct handshake_queue *requests = links->requests;
    struct handshake_slot *batch[HANDSHAKE_BATCH_MAX];
    for (;;) {
        pthread_mutex_lock(&requests->lock);
        while (requests->count == 0 && !atomic_load(links->stopping))
            pthread_cond_wait(&requests->nonempty, &requests->lock);
        bool stop = requests->count == 0;
        pthread_mutex_unlock(&requests->lock);
        if (stop) break;
        uint32_t count = handshake_queue_pop(requests, batch, HANDSHAKE_BATCH_MAX);
        for (uint32_t index = 0; index < count; index++) {
            struct handshake_slot *slot = batch[index];
            INTAKE_ASSERT(slot->reactor < links->reactor_count);
            handshake_run_job(links->server, links->records_per_key_max, slot);
            /* The answer is published by the queue's lock, then the reactor is woken. */
            handshake_queue_push(&links->answers[slot->reactor], slot);
            doorbell_ring_always(&links->reactor_doorbells[slot->reactor]);
        }
    }
    return NULL;
}

int handshake_thread_start(const struct handshake_links *links, struct handshake_thread **out,
                           char *why, size_t why_capacity) {
    INTAKE_ASSERT(links->server != NULL && links->requests != NULL && links->answers != NULL);
    INTAKE_ASSERT(links->stopping != NULL && links->reactor_count > 0);
    struct handshake_thread *thread = calloc(1, sizeof(*thread));
    if (thread == NULL) return -ENOMEM;
    thread->links = *links;
    int result = pthread_create(&thread->thread, NULL, handshake_thread_main, thread);
    if (result != 0) {
        intake_error_line(why, why_capacity, "handshake thread %u: cannot start: %s", links->index,
                          strerror(result));
        free(thread);
        return -result;
    }
    thread->started = true;
    *out = thread;
    return 0;
}

void handshake_thread_join(struct handshake_thread *thread) {
    if (thread == NULL || !thread->started) return;
    INTAKE_ASSERT(atomic_load(thread->links.stopping));
    struct handshake_queue *requests = thread->links.requests;
    pthread_mutex_lock(&requests->lock);
    pthread_cond_broadcast(&requests->nonempty);
    pthread_mutex_unlock(&requests->lock);
    pthread_join(thread->thread, NULL);
    thread->started = false;
}

void handshake_thread_destroy(struct handshake_thread *thread) {
    if (thread == NULL) return;
    INTAKE_ASSERT(!thread->started);
    free(thread);
}
