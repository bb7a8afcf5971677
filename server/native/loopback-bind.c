/*
 * LD_PRELOAD shim for Orthanc 1.10, which has no listen-address setting and binds its HTTP and
 * DICOM servers to every interface. Loaded into Orthanc (and nothing else), it turns a bind() to
 * the wildcard address (0.0.0.0 or ::) on a non-zero port into a bind() to the loopback address,
 * except for the ports listed in RRL_BIND_PUBLIC_PORTS (comma-separated), which the administrator
 * chose to expose (the DICOM port, for modalities on an AE-title allow-list).
 *
 * Built by server/src/pacs/loopbackShim.ts with the system C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int port_is_public(unsigned port) {
  const char *p = getenv("RRL_BIND_PUBLIC_PORTS");
  if (p == NULL) return 0;
  while (*p) {
    char *end = NULL;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    if (v == port) return 1;
    p = end;
  }
  return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    struct sockaddr_in a;
    memcpy(&a, addr, sizeof a);
    unsigned port = ntohs(a.sin_port);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY) && port != 0 && !port_is_public(port)) {
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
  } else if (addr != NULL && addr->sa_family == AF_INET6 &&
             len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a;
    memcpy(&a, addr, sizeof a);
    unsigned port = ntohs(a.sin6_port);
    if (memcmp(&a.sin6_addr, &in6addr_any, sizeof a.sin6_addr) == 0 && port != 0 &&
        !port_is_public(port)) {
      a.sin6_addr = in6addr_loopback;
      return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
  }
  return real_bind(fd, addr, len);
}
