/* zos.h -- return codes and small helpers shared by every module of libzos. */
#ifndef ZOS_ZOS_H
#define ZOS_ZOS_H

#include <stddef.h>

#define ZOS_OK    0
#define ZOS_ERR   (-1)
#define ZOS_AGAIN 1 /* "not yet": more input is needed */

#ifndef ZOS_VERSION
#define ZOS_VERSION "0.0.0"
#endif

#define ZOS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
