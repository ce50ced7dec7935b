/*
 * traced_child.h: runs a child process under ptrace and holds it at the entry of one system
 * call, so a test can put another process's action exactly between two of the child's steps
 * (a race driven deterministically, not by luck).
 *
 * traced_start forks a child that stops itself before running `body` (a function of the test,
 * or an exec of a program); traced_stop_at runs it until it enters `syscall_number` with a
 * first argument that is a descriptor naming a path ending in `path_suffix`, and leaves it
 * stopped there; traced_release lets it go on (untraced). The child dies with the test
 * (PTRACE_O_EXITKILL). Header-only, like the other test helpers.
 */
#ifndef INTAKE_TRACED_CHILD_H
#define INTAKE_TRACED_CHILD_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

/* Forks a child that runs body(argument) (its return value is the exit code) once the tracer
 * lets it, stopped until then. */
static __attribute__((unused)) pid_t traced_start(int (*body)(void *), void *argument) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
        raise(SIGSTOP);
        int code = body(argument);
        fflush(stdout);
        fflush(stderr);
        _exit(code);
    }
    if (pid < 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) return -1;
    long options = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACEEXEC;
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)options) != 0) return -1;
    return pid;
}

/* Whether descriptor `fd` of process `pid` names a path ending in `suffix`. */
static __attribute__((unused)) bool traced_fd_names(pid_t pid, long fd, const char *suffix) {
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/%d/fd/%ld", (int)pid, fd);
    ssize_t length = readlink(link, target, sizeof(target) - 1);
    if (length < 0) return false;
    target[length] = '\0';
    size_t suffix_length = strlen(suffix);
    return (size_t)length >= suffix_length && strcmp(target + length - suffix_length, suffix) == 0;
}

/* Runs the child until it enters `syscall_number` on a descriptor naming `path_suffix`; it stays
 * stopped there (the call has not run). False when it exited first (or tracing failed). */
static __attribute__((unused)) bool traced_stop_at(pid_t pid, long syscall_number,
                                                   const char *path_suffix) {
    int deliver = 0;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)deliver) != 0) return false;
        deliver = 0;
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) return false;
        if (WIFEXITED(status) || WIFSIGNALED(status)) return false;
        if (!WIFSTOPPED(status)) continue;
        int stop = WSTOPSIG(status);
        if (stop == (SIGTRAP | 0x80)) {
            struct __ptrace_syscall_info info;
            memset(&info, 0, sizeof(info));
            if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof(info), &info) <= 0)
                return false;
            if (info.op == PTRACE_SYSCALL_INFO_ENTRY && (long)info.entry.nr == syscall_number &&
                traced_fd_names(pid, (long)info.entry.args[0], path_suffix))
                return true;
            continue;
        }
        /* An exec event or the trap after it: not a signal for the child. */
        if (stop == SIGTRAP) continue;
        deliver = stop; /* a real signal: pass it on */
    }
}

/* Lets the stopped child go on, no longer traced. */
static __attribute__((unused)) void traced_release(pid_t pid) {
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

#endif
