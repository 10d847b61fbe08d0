// The doctest main of the test binary (doctest 2.4.9 in Debian has no doctest_with_main target).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
