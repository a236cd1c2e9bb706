/*
 * Part of points_program: a point compiled with WRENCH_NO_SITES, which
 * keeps no site record but still leaves its names in the binary.
 */
#define WRENCH_NO_SITES
#include <stdbool.h>

#include "wrench.h"

bool points_no_sites(void);

bool points_no_sites(void)
{
	return wrench_is_active("nosites", "still-listed");
}
