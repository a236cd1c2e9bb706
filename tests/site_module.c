/*
 * A plug-in with failure points of its own, for test_sites: loaded with
 * dlopen(), it calls wrench_is_active() with literals, as product code in
 * a shared library does. It is not linked with the library: it binds to
 * the copy in the executable that loads it (see tests/CMakeLists.txt).
 */
#include <stdbool.h>

#include "wrench.h"

#define SITE_MODULE_EXPORT __attribute__((visibility("default")))

SITE_MODULE_EXPORT bool site_module_feat(void);
SITE_MODULE_EXPORT bool site_module_other(void);

bool site_module_feat(void)
{
	return wrench_is_active("sitecat", "feat");
}

bool site_module_other(void)
{
	return wrench_is_active("sitecat", "other");
}
