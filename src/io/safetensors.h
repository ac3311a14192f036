/* safetensors.h: reading and writing the safetensors format.
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * mapping tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data section that follows the header), plus an
 * optional "__metadata__" object of string -> string.
 *
 * Reading: st_file_open mmaps one file and validates everything before any
 * tensor is handed out: header length within the file, JSON well formed, a
 * known dtype, shape x element size == byte range (with overflow checks),
 * ranges inside the data section and not overlapping, names unique.
 * st_checkpoint_open does the same for a Hugging Face folder: one
 * model.safetensors or model.safetensors.index.json + shards (every shard
 * the index names, every tensor in the shard the index says). Tensor data
 * stays in the mmap: pointers are valid until the file/checkpoint is freed.
 *
 * Writing: st_writer collects tensors (borrowed pointers) and metadata and
 * writes one file atomically (tmp + fsync + rename). The header is padded
 * with spaces to a multiple of 8 bytes; tensors are laid out contiguously,
 * ordered by element size (largest first) then name, as the reference
 * serializer does, so every tensor starts aligned to its element size.
 *
 * Every error message names the file and, where there is one, the tensor.
 */
#ifndef SC_SAFETENSORS_H
#define SC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"

#define ST_MAX_DIMS 8
/* Headers larger than this are refused as malformed (the reference limit). */
#define ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct st_tensor {
  const char *name;            /* owned by the file */
  sc_dtype dtype;
  int n_dims;                  /* 0 for a scalar */
  int64_t shape[ST_MAX_DIMS];  /* (n_dims) */
  int64_t n_elements;          /* product of shape (1 for a scalar) */
  const void *data;            /* into the mapping; NULL if nbytes == 0 */
  size_t nbytes;
  int shard;                   /* index of the file it lives in (checkpoint) */
} st_tensor;

typedef struct st_file st_file;

/* Writes a shape as "[a,b,c]" ("[]" for a scalar) into buf, truncated to
 * cap bytes; the one spelling every shape message uses. */
void st_shape_str(char *buf, size_t cap, int n_dims, const int64_t *shape);

/* Opens and validates one .safetensors file. */
int st_file_open(st_file **out, const char *path);
/* Validates bytes already in memory (borrowed; must outlive *out). `name` is
 * used in messages. Used by the fuzzer and by tests. */
int st_file_from_memory(st_file **out, const void *buf, size_t len, const char *name);
void st_file_free(st_file *f);

int st_file_n_tensors(const st_file *f);
/* Tensors in data-offset order. */
const st_tensor *st_file_tensor(const st_file *f, int i);
const st_tensor *st_file_find(const st_file *f, const char *name);
int st_file_n_meta(const st_file *f);
/* i-th metadata pair; key and value owned by the file. */
void st_file_meta(const st_file *f, int i, const char **key, const char **value);
/* Metadata value for key or NULL. */
const char *st_file_meta_get(const st_file *f, const char *key);
const char *st_file_path(const st_file *f);

typedef struct st_checkpoint st_checkpoint;

/* path: a .safetensors file, or a folder holding model.safetensors.index.json
 * (preferred) or a single model.safetensors. */
int st_checkpoint_open(st_checkpoint **out, const char *path);
void st_checkpoint_free(st_checkpoint *c);
int st_checkpoint_n_tensors(const st_checkpoint *c);
/* Tensors sorted by name. */
const st_tensor *st_checkpoint_tensor(const st_checkpoint *c, int i);
const st_tensor *st_checkpoint_find(const st_checkpoint *c, const char *name);
int st_checkpoint_n_files(const st_checkpoint *c);
const st_file *st_checkpoint_file(const st_checkpoint *c, int i);

typedef struct st_writer st_writer;

int st_writer_create(st_writer **out);
void st_writer_free(st_writer *w);
/* Adds a metadata pair (copied). Duplicate keys are an error. */
int st_writer_add_meta(st_writer *w, const char *key, const char *value);
/* Adds a tensor. name and shape are copied; data is borrowed and must stay
 * valid until st_writer_write returns. nbytes must equal the shape's size.
 * Duplicate names are an error. */
int st_writer_add(st_writer *w, const char *name, sc_dtype dtype, int n_dims,
                  const int64_t *shape, const void *data, size_t nbytes);
/* Total bytes of tensor data added so far. */
size_t st_writer_data_bytes(const st_writer *w);
/* Writes the file atomically. The writer can be written again or freed. */
int st_writer_write(st_writer *w, const char *path);

#endif
