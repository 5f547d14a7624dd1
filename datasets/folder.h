// torchvision ImageFolder trees (root/<class>/**/<image>): the same class order
// and sample order as torchvision, an optional class-index file, the bad-image
// policy, and a prefetching batch loader with the eval transform.
#ifndef QTK_FOLDER_H
#define QTK_FOLDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QTK_BAD_SKIP = 0, QTK_BAD_FAIL } qtk_bad_policy;

typedef struct {
    char *root;
    int n_classes;
    char **classes;   // class folder names; label = index
    size_t n;
    char **paths;     // samples in torchvision's order
    int *labels;
    size_t n_other;   // files with other image extensions (PNG, ...): not supported, not listed
    int n_empty;      // class folders without a JPEG
} qtk_image_folder;

// Scans root. Classes: the sub-folders sorted by name (as torchvision), or
// with class_index (a file with one folder name per line, e.g. the ImageNet
// synsets) in that file's order; a listed class without a folder, or a folder
// not listed, is an error naming it. Samples: .jpg/.jpeg (any case), folders
// walked in sorted order, names sorted within each folder.
qtk_status qtk_folder_open(qtk_image_folder *f, const char *root, const char *class_index);
void qtk_folder_free(qtk_image_folder *f);

// A flat folder of images with a label list (ImageNet's val/ as distributed):
// each line "<image id or file name>,<class name>[ anything]" (Kaggle's
// LOC_val_solution.csv; a header line is skipped) or "<file> <class>"; the
// class names resolve through class_index (e.g. the synsets, one per line).
// ".JPEG" is appended to ids without an extension. Samples are sorted by file
// name. A listed file that is missing, or an unknown class, is an error
// naming the line.
qtk_status qtk_folder_open_list(qtk_image_folder *f, const char *root, const char *list, const char *class_index);

// The eval transform of a model, applied by the loader.
typedef struct {
    int size;        // crop (224)
    float crop_pct;  // 0.875 DeiT, 0.9 ViT
    float mean[3], std[3];
    int fast_decode; // DCT-domain downscaling while decoding: faster, NOT PIL-exact (off by default)
} qtk_transform;

// The shorter side the resize goes to: floor(size / crop_pct).
int qtk_transform_resize_short(const qtk_transform *t);

// Bad images met so far (skipped ones, with the reason).
typedef struct {
    size_t n;
    char **paths;
    char **reasons;
} qtk_bad_list;

// Loads batches of (3, size, size) floats for the given sample indices, in
// order, decoding with OpenMP and preparing the next batch in a background
// thread while the caller uses the current one.
typedef struct qtk_loader qtk_loader;

qtk_status qtk_loader_open(qtk_loader **ld, const qtk_image_folder *f, const uint32_t *indices, size_t n, int batch,
                           const qtk_transform *t, qtk_bad_policy policy);
// Next batch: *images (count, 3, size, size), *labels, *index (positions in
// `indices`); count < batch at the end, 0 when done. Skipped images are left
// out (and recorded); with QTK_BAD_FAIL the first bad image is an error.
qtk_status qtk_loader_next(qtk_loader *ld, const float **images, const int **labels, int *count);
const qtk_bad_list *qtk_loader_bad(const qtk_loader *ld);
void qtk_loader_close(qtk_loader *ld);

// Preprocessed-tensor cache: the (size, size, 3) uint8 crops of the given
// samples in a safetensors file, with the transform and every file's path,
// size and mtime fingerprinted in __metadata__. If cache_path holds a cache
// with the same fingerprint it is read (no decoding; *hit = 1); otherwise the
// images are decoded in parallel and the cache is (re)written atomically.
// Bad images follow the policy; skipped ones are reported in *bad. Output:
// *images (*n_out, 3, size, size) normalized floats, *labels, malloc'd.
qtk_status qtk_folder_cached(const qtk_image_folder *f, const uint32_t *indices, size_t n, const qtk_transform *t,
                             qtk_bad_policy policy, const char *cache_path, float **images, int **labels,
                             size_t *n_out, int *hit, qtk_bad_list *bad);
void qtk_bad_list_free(qtk_bad_list *b);

#ifdef __cplusplus
}
#endif

#endif
