# SPDX-License-Identifier: Apache-2.0
# CPACK_PROJECT_CONFIG_FILE: read by cpack for each generator, before it
# installs the components: tells cmake/MmInstallFile.cmake it is packaging.
set(ENV{MM_CPACK} 1)
