/* torch_file.h: what the tests see of torch_file.c beyond nn.h. */
#ifndef NN_TORCH_FILE_H
#define NN_TORCH_FILE_H

#include "nn.h"

/* nn_pt_write, with every ZIP record in its ZIP64 form when force_zip64
   (as a file past 4 GiB has them), so that a test can check those forms
   without writing 4 GiB. */
int nn_pt_write_zip(const char *path, const void *pickle, size_t pickle_len,
                    const nn_pt_storage *storages, int64_t n, int force_zip64);

#endif
