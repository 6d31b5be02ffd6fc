"""The box's syscall filter, built with libseccomp (Debian's python3-seccomp) and written as BPF for
`bwrap --seccomp`. Run by the GPU worker at start with the host's system Python:

    /usr/bin/python3 seccomp.py OUT.bpf

It refuses (EPERM) what a training never needs, as Flatpak and Codex's Linux sandbox do on top of
bubblewrap: tracing or reading other processes, the kernel keyring, BPF, userfaultfd, perf events,
mounts, new user namespaces, kernel modules, kexec. Everything else is allowed.
"""
import errno
import sys

import seccomp

REFUSED = [
    "ptrace", "process_vm_readv", "process_vm_writev",  # other processes' memory
    "keyctl", "add_key", "request_key",  # the kernel keyring: not namespaced
    "bpf", "userfaultfd", "perf_event_open",  # kernel attack surface a training never uses
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "unshare", "setns",  # no new namespaces: a user namespace gives back capabilities inside it
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
]
CLONE_NEWUSER = 0x10000000


def build(out_path):
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError):
            pass  # a syscall this architecture does not have
    # clone with CLONE_NEWUSER is refused; clone3 (whose flags a filter cannot read) says "not
    # implemented", so the C library falls back to clone.
    f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with open(out_path, "wb") as out:
        f.export_bpf(out)


if __name__ == "__main__":
    build(sys.argv[1])
