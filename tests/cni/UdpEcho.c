// SPDX-License-Identifier: MIT
// udp-echo PORT: sends every datagram on 0.0.0.0:PORT back to its sender. Linked statically so it
// runs in the Podman test's busybox rootfs, which has no UDP server (its nc is TCP only).
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char** argv) {
  if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
    fprintf(stderr, "usage: udp-echo PORT\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  if (fd < 0 || bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    perror("udp-echo: bind");
    return 1;
  }
  for (;;) {
    char buf[2048];
    struct sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr*)&from, &len);
    if (n >= 0) {
      sendto(fd, buf, (size_t)n, 0, (struct sockaddr*)&from, len);
    }
  }
}
