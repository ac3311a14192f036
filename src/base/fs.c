/* fs.c: atomic writes, whole-file reads, mmaps, folders (see fs.h). */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"

static char *str_dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void afile_release(sc_afile *f) {
  free(f->path);
  free(f->tmp_path);
  f->path = f->tmp_path = NULL;
  f->fp = NULL;
  f->failed = 0;
}

int sc_afile_open(sc_afile *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->path = str_dup(path);
  f->tmp_path = malloc(strlen(path) + 5);
  if (!f->path || !f->tmp_path) {
    afile_release(f);
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path);
  }
  sprintf(f->tmp_path, "%s.tmp", path);
  f->fp = fopen(f->tmp_path, "wb");
  if (!f->fp) {
    int e = errno;
    afile_release(f);
    return sc_error_setc(SC_ERR_IO, "%s: cannot write: %s", path, strerror(e));
  }
  return 0;
}

int sc_afile_write(sc_afile *f, const void *buf, size_t n) {
  if (!f->fp) return sc_error_setc(SC_ERR_INTERNAL, "write to a closed file");
  if (n && fwrite(buf, 1, n, f->fp) != n) {
    f->failed = 1;
    return sc_error_setc(SC_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
  }
  return 0;
}

int sc_afile_printf(sc_afile *f, const char *fmt, ...) {
  if (!f->fp) return sc_error_setc(SC_ERR_INTERNAL, "write to a closed file");
  va_list ap;
  va_start(ap, fmt);
  int r = vfprintf(f->fp, fmt, ap);
  va_end(ap);
  if (r < 0) {
    f->failed = 1;
    return sc_error_setc(SC_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
  }
  return 0;
}

static void fsync_parent(const char *path) {
  char *dir = str_dup(path);
  if (!dir) return;
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else strcpy(dir, ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

int sc_afile_commit(sc_afile *f) {
  if (!f->fp) return sc_error_setc(SC_ERR_INTERNAL, "commit of a closed file");
  int rc = 0;
  if (f->failed) rc = sc_error_setc(SC_ERR_IO, "%s: an earlier write failed", f->path);
  if (!rc && (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0))
    rc = sc_error_setc(SC_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
  if (fclose(f->fp) != 0 && !rc)
    rc = sc_error_setc(SC_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
  f->fp = NULL;
  if (!rc && rename(f->tmp_path, f->path) != 0)
    rc = sc_error_setc(SC_ERR_IO, "%s: cannot rename into place: %s", f->path, strerror(errno));
  if (rc) unlink(f->tmp_path);
  else fsync_parent(f->path);
  afile_release(f);
  return rc;
}

void sc_afile_abort(sc_afile *f) {
  if (!f) return;
  if (f->fp) {
    fclose(f->fp);
    unlink(f->tmp_path);
  }
  afile_release(f);
}

int sc_write_file_atomic(const char *path, const void *buf, size_t n) {
  sc_afile f;
  int rc = sc_afile_open(&f, path);
  if (rc) return rc;
  rc = sc_afile_write(&f, buf, n);
  if (rc) {
    sc_afile_abort(&f);
    return rc;
  }
  return sc_afile_commit(&f);
}

int sc_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return sc_error_setc(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(fp);
    return sc_error_setc(SC_ERR_IO, "%s: not a regular file", path);
  }
  if ((unsigned long long)st.st_size > max_bytes) {
    fclose(fp);
    return sc_error_setc(SC_ERR_RANGE, "%s: file is %lld bytes, more than the limit of %zu", path,
                         (long long)st.st_size, max_bytes);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(fp);
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
  }
  size_t got = fread(buf, 1, n, fp);
  fclose(fp);
  if (got != n) {
    free(buf);
    return sc_error_setc(SC_ERR_IO, "%s: short read", path);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

int sc_mmap_open(sc_mmap *m, const char *path) {
  m->data = NULL;
  m->size = 0;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return sc_error_setc(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return sc_error_setc(SC_ERR_IO, "%s: not a regular file", path);
  }
  if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      close(fd);
      return sc_error_setc(SC_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    }
    m->data = p;
    m->size = (size_t)st.st_size;
  }
  close(fd);
  return 0;
}

void sc_mmap_close(sc_mmap *m) {
  if (!m) return;
  if (m->data) munmap((void *)m->data, m->size);
  m->data = NULL;
  m->size = 0;
}

int sc_mkdirs(const char *path) {
  char *p = str_dup(path);
  if (!p) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      int e = errno;
      free(p);
      return sc_error_setc(SC_ERR_IO, "%s: cannot create folder: %s", path, strerror(e));
    }
    *s = c;
    if (c == '\0') break;
  }
  free(p);
  if (!sc_is_dir(path)) return sc_error_setc(SC_ERR_IO, "%s: exists and is not a folder", path);
  return 0;
}

int sc_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sc_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *sc_path_join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na > 1 && a[na - 1] == '/') na--;
  char *r = malloc(na + nb + 2);
  if (!r) return NULL;
  memcpy(r, a, na);
  size_t k = na;
  if (na && a[na - 1] != '/') r[k++] = '/';
  memcpy(r + k, b, nb + 1);
  return r;
}

const char *sc_path_base(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}
