// qtk: post-training quantization toolkit. One include for the core library.
#ifndef QTK_H
#define QTK_H

#define QTK_VERSION "0.1.0"
// The export format written by qtk_qreg_export (docs/export.md); bumped on an incompatible change.
#define QTK_EXPORT_FORMAT "1"

#include "error.h"
#include "fakequant.h"
#include "file.h"
#include "biascorr.h"
#include "hadamard.h"
#include "intlayernorm.h"
#include "model.h"
#include "observer.h"
#include "ops.h"
#include "pack.h"
#include "params.h"
#include "qparams.h"
#include "qpoint.h"
#include "rng.h"
#include "safetensors.h"
#include "tensor.h"
#include "cuda/gemm.h"
#include "cuda/qtk_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif
// The git commit this library was built from ("unknown" outside a git checkout).
const char *qtk_commit(void);
#ifdef __cplusplus
}
#endif

#endif
