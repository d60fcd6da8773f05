// SPDX-License-Identifier: MIT
#pragma once

// braid's version, as numbers for the preprocessor and as a string.

#define BRAID_VERSION_MAJOR 0
#define BRAID_VERSION_MINOR 1
#define BRAID_VERSION_PATCH 0
#define BRAID_VERSION_STRING "0.1.0"
