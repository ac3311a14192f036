/* fs.h: files. Atomic writes, whole-file reads, read-only mmaps, folders.
 *
 * Every output saecap writes goes through sc_afile: bytes go to
 * "<path>.tmp", and sc_afile_commit() fsyncs, renames onto <path> and fsyncs
 * the folder, so a reader sees the old file or the whole new one, never half.
 * sc_afile_abort() (or a commit that fails) removes the temporary file.
 * All errors set a message naming the path.
 */
#ifndef SC_FS_H
#define SC_FS_H

#include <stddef.h>
#include <stdio.h>

typedef struct sc_afile {
  FILE *fp;        /* open on tmp_path while writing */
  char *path;      /* final path (owned) */
  char *tmp_path;  /* path + ".tmp" (owned) */
  int failed;      /* a write failed: commit will refuse */
} sc_afile;

/* Opens path.tmp for writing. On failure *f is left closed. */
int sc_afile_open(sc_afile *f, const char *path);
int sc_afile_write(sc_afile *f, const void *buf, size_t n);
/* printf into the file. */
int sc_afile_printf(sc_afile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fsync + rename + fsync(dir). Frees f's fields whatever the result. */
int sc_afile_commit(sc_afile *f);
/* Closes and removes the temporary file. Safe on a closed or zeroed f. */
void sc_afile_abort(sc_afile *f);

/* Writes buf to path atomically. */
int sc_write_file_atomic(const char *path, const void *buf, size_t n);

/* Reads a whole file into a malloc'd buffer with a NUL after the last byte
 * (not counted in *len). Refuses files larger than max_bytes. */
int sc_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* A read-only mapping of a whole file. An empty file maps to data == NULL. */
typedef struct sc_mmap {
  const unsigned char *data;
  size_t size;
} sc_mmap;
int sc_mmap_open(sc_mmap *m, const char *path);
void sc_mmap_close(sc_mmap *m);

/* mkdir -p. */
int sc_mkdirs(const char *path);
/* 1 if path exists and is a regular file / a directory. */
int sc_is_file(const char *path);
int sc_is_dir(const char *path);
/* malloc'd "a/b" (no doubled slash); NULL when out of memory. */
char *sc_path_join(const char *a, const char *b);
/* Pointer to the last component of path (inside path). */
const char *sc_path_base(const char *path);

#endif
