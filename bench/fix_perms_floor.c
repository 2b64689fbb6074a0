/* The least work a recursive change of owner can do on Linux, as a yardstick for bench/fix-perms:
 * one thread, every directory opened once relative to its parent (O_NOFOLLOW), listed with
 * getdents64 into a 64 KiB buffer, its entries taken in inode order with the type the listing
 * gives, and per entry exactly one system call: fchownat (mode "chown", never following a
 * symlink) or fstatat (mode "stat", what finding nothing to change costs at least). A directory
 * is changed (or examined) through its descriptor after its entries. No checks, no counts, no
 * error handling beyond stopping: not a tool, a lower bound.
 *
 * Usage: fix_perms_floor chown|stat UID GID DIRECTORY */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

struct entry {
    uint64_t ino;
    unsigned char type;
    char *name;
};

static int change;
static uid_t uid;
static gid_t gid;

static int by_inode(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return (x->ino > y->ino) - (x->ino < y->ino);
}

static void die(const char *what, const char *name)
{
    perror(name);
    fprintf(stderr, "fix_perms_floor: %s failed\n", what);
    exit(1);
}

static void one(int dir, const char *name)
{
    struct stat st;
    if (change ? fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)
               : fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW))
        die(change ? "fchownat" : "fstatat", name);
}

static void walk(int dir)
{
    static char buffer[64 * 1024];
    struct entry *entries = NULL;
    size_t count = 0, room = 0;
    long filled;
    while ((filled = syscall(SYS_getdents64, dir, buffer, sizeof buffer)) > 0) {
        for (long at = 0; at < filled;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buffer + at);
            at += d->d_reclen;
            if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
                continue;
            if (count == room) {
                room = room ? 2 * room : 256;
                entries = realloc(entries, room * sizeof *entries);
                if (!entries)
                    die("realloc", "entries");
            }
            entries[count++] = (struct entry){d->d_ino, d->d_type, strdup(d->d_name)};
        }
    }
    if (filled < 0)
        die("getdents64", "directory");
    qsort(entries, count, sizeof *entries, by_inode);
    for (size_t i = 0; i < count; i++) {
        if (entries[i].type == DT_DIR) {
            int sub = openat(dir, entries[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                die("openat", entries[i].name);
            walk(sub);
            close(sub);
        } else {
            one(dir, entries[i].name);
        }
        free(entries[i].name);
    }
    free(entries);
    struct stat st;
    if (change ? fchown(dir, uid, gid) : fstat(dir, &st))
        die(change ? "fchown" : "fstat", "directory");
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "chown") && strcmp(argv[1], "stat"))) {
        fprintf(stderr, "usage: fix_perms_floor chown|stat UID GID DIRECTORY\n");
        return 2;
    }
    change = !strcmp(argv[1], "chown");
    uid = (uid_t)strtoul(argv[2], NULL, 10);
    gid = (gid_t)strtoul(argv[3], NULL, 10);
    int root = open(argv[4], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        die("open", argv[4]);
    walk(root);
    return 0;
}
