// SPDX-License-Identifier: MIT
#pragma once

// Everything public in braid, in one include.

#include <braid/errors.hpp>
#include <braid/version.hpp>
