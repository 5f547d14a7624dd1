// The build's identity, written into every export (qtk_commit): the git commit the library was
// built from (Makefile: build/commit.h), "-dirty" when the tree had uncommitted changes.
#include "qtk.h"

#include "commit.h"

const char *qtk_commit(void) { return QTK_GIT_COMMIT; }
