/*
 * insn_count: a QEMU TCG plugin that counts executed guest instructions per guest thread (vCPU) and prints
 * the running counts whenever the guest makes the marker syscall (number MARKER_SYSCALL, first argument a tag),
 * so a guest can bracket one inference: syscall(4242, 1); run(); syscall(4242, 2).
 *
 * Counting: when a translation block is translated, a callback is attached that adds the block's instruction
 * count to the executing vCPU's counter each time the block runs (user-mode QEMU: one vCPU per guest thread).
 *
 * Output: one line per marker, "mark TAG VCPU IDX:COUNT IDX:COUNT ...", then "exit IDX:COUNT ..." at exit,
 * appended to the file given as out=PATH (or through qemu_plugin_outs, visible with -d plugin -D LOG).
 *
 * The API declarations below are written from QEMU's documented TCG plugin interface
 * (https://www.qemu.org/docs/master/devel/tcg-plugins.html, API version 1 as in QEMU 7.2); the symbols they
 * name are exported by qemu-aarch64 (check: nm -D $(which qemu-aarch64) | grep qemu_plugin_).
 * Build and use: see build.sh next to this file, and benchmarks/arm_estimate.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the QEMU plugin interface (declarations only) ---- */
#define PLUGIN_EXPORT __attribute__((visibility("default")))
#ifndef PLUGIN_API_VERSION
#define PLUGIN_API_VERSION 1
#endif
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_cb_flags { CB_NO_REGS = 0 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                             uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                             uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

/* ---- the plugin ---- */
PLUGIN_EXPORT int qemu_plugin_version = PLUGIN_API_VERSION;

#define MARKER_SYSCALL 4242
#define MAX_VCPUS 1024

static uint64_t counts[MAX_VCPUS]; /* slot i is written only by vCPU i's thread */
static FILE *out;

static void emit(const char *text)
{
    if (out) {
        fputs(text, out);
        fflush(out);
    } else {
        qemu_plugin_outs(text);
    }
}

static void report(const char *head)
{
    static char line[MAX_VCPUS * 32 + 64];
    size_t used = (size_t)snprintf(line, sizeof line, "%s", head);
    for (unsigned int i = 0; i < MAX_VCPUS; i++) {
        uint64_t n = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
        if (n && used < sizeof line - 32)
            used += (size_t)snprintf(line + used, sizeof line - used, " %u:%llu", i, (unsigned long long)n);
    }
    snprintf(line + used, sizeof line - used, "\n");
    emit(line);
}

static void on_block(unsigned int vcpu_index, void *n_insns)
{
    if (vcpu_index < MAX_VCPUS)
        __atomic_store_n(&counts[vcpu_index], counts[vcpu_index] + (uintptr_t)n_insns, __ATOMIC_RELAXED);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uintptr_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, CB_NO_REGS, (void *)n);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    if (num != MARKER_SYSCALL)
        return;
    char head[64];
    snprintf(head, sizeof head, "mark %llu %u", (unsigned long long)a1, vcpu_index);
    report(head);
}

static void on_guest_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id, (void)userdata;
    report("exit");
    if (out)
        fclose(out);
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out = fopen(argv[i] + 4, "a");
            if (!out) {
                fprintf(stderr, "insn_count: cannot open %s\n", argv[i] + 4);
                return -1;
            }
        } else {
            fprintf(stderr, "insn_count: unknown argument %s (expected out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
