/* version.h: saecap's version, recorded in manifests and results. */
#ifndef SC_VERSION_H
#define SC_VERSION_H

#define SAECAP_VERSION "0.1.0"

#endif
