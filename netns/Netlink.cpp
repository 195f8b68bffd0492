// SPDX-License-Identifier: MIT
#include "netns/Netlink.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <ctime>

#include "netns/Namespace.h"
#include "netns/NlAttr.h"

namespace gw {
namespace {

// Dump replies are capped by the kernel at 32 KiB per datagram; single replies are smaller.
constexpr size_t kReceiveSize = 64 * 1024;
// A kernel that never answers is a bug, but a daemon must not hang on it forever.
constexpr time_t kReceiveTimeoutSeconds = 10;

// The extack message string in an NLMSG_ERROR or NLMSG_DONE payload, if the kernel sent one.
std::string extackText(const nlmsghdr* nlh, size_t offset) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || nlh->nlmsg_len < NLMSG_HDRLEN + offset) {
    return {};
  }
  std::string text;
  nl::forEachAttr(nlh, offset, [&](const nlattr* attr) {
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
      text = mnl_attr_get_str(attr);
    }
  });
  return text;
}

std::unexpected<Error> kernelError(std::string_view what, int code, const std::string& extack) {
  // Built field by field: the kernel's errno text is still appended by Error::str().
  Error error;
  error.code = code;
  error.message = what;
  if (!extack.empty()) {
    error.message += ": " + extack;
  }
  return std::unexpected(std::move(error));
}

} // namespace

void Netlink::Closer::operator()(mnl_socket* sock) const {
  mnl_socket_close(sock);
}

Netlink::Netlink(std::unique_ptr<mnl_socket, Closer> sock, uint32_t portId, uint32_t seq)
    : sock_(std::move(sock)), portId_(portId), seq_(seq), buffer_(kReceiveSize) {}

Netlink::~Netlink() = default;

Result<Netlink> Netlink::open() {
  std::unique_ptr<mnl_socket, Closer> sock(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!sock) {
    return sysError("open NETLINK_ROUTE socket");
  }
  int one = 1;
  if (mnl_socket_setsockopt(sock.get(), NETLINK_EXT_ACK, &one, sizeof one) != 0) {
    return sysError("setsockopt(NETLINK_EXT_ACK)");
  }
  // Errors then carry only the request's header, not the whole request echoed back.
  if (mnl_socket_setsockopt(sock.get(), NETLINK_CAP_ACK, &one, sizeof one) != 0) {
    return sysError("setsockopt(NETLINK_CAP_ACK)");
  }
  timeval timeout{kReceiveTimeoutSeconds, 0};
  if (setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout) != 0) {
    return sysError("setsockopt(SO_RCVTIMEO) on netlink socket");
  }
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) != 0) {
    return sysError("bind netlink socket");
  }
  uint32_t portId = mnl_socket_get_portid(sock.get());
  return Netlink(std::move(sock), portId, static_cast<uint32_t>(time(nullptr)));
}

Result<Netlink> Netlink::openIn(int nsFd) {
  auto guard = NetnsGuard::enter(nsFd);
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return open();
}

Result<Netlink> Netlink::openIn(const std::string& nsName) {
  auto guard = NetnsGuard::enter(nsName);
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return open();
}

int Netlink::fd() const {
  return mnl_socket_get_fd(sock_.get());
}

Status Netlink::request(nlmsghdr* msg, std::string_view what) {
  return exchange(msg, nullptr, false, what);
}

Status Netlink::request(nlmsghdr* msg, const OnMessage& onMessage, std::string_view what) {
  return exchange(msg, &onMessage, false, what);
}

Status Netlink::dump(nlmsghdr* msg, const OnMessage& onMessage, std::string_view what) {
  return exchange(msg, &onMessage, true, what);
}

Status Netlink::exchange(nlmsghdr* msg, const OnMessage* onMessage, bool isDump,
                         std::string_view what) {
  uint32_t seq = ++seq_;
  msg->nlmsg_flags |= NLM_F_REQUEST | (isDump ? NLM_F_DUMP : NLM_F_ACK);
  msg->nlmsg_seq = seq;
  if (mnl_socket_sendto(sock_.get(), msg, msg->nlmsg_len) < 0) {
    return sysError(std::string(what) + ": netlink send");
  }
  bool interrupted = false;
  while (true) {
    ssize_t got = mnl_socket_recvfrom(sock_.get(), buffer_.data(), buffer_.size());
    if (got < 0) {
      return sysError(std::string(what) + ": netlink receive");
    }
    const auto* nlh = static_cast<const nlmsghdr*>(static_cast<const void*>(buffer_.data()));
    int left = static_cast<int>(got);
    for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      // Replies to an earlier request that timed out, or not ours: skip.
      if (nlh->nlmsg_seq != seq || (nlh->nlmsg_pid != 0 && nlh->nlmsg_pid != portId_)) {
        continue;
      }
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
        interrupted = true;
      }
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
          return fail(std::string(what) + ": truncated netlink error", EBADMSG);
        }
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        // With NETLINK_CAP_ACK the echoed request is just its header.
        size_t offset = (nlh->nlmsg_flags & NLM_F_CAPPED)
                            ? sizeof(nlmsgerr)
                            : sizeof(int) + NLMSG_ALIGN(err->msg.nlmsg_len);
        if (err->error != 0) {
          return kernelError(what, -err->error, extackText(nlh, offset));
        }
        return {};
      }
      if (nlh->nlmsg_type == NLMSG_DONE) {
        int error = 0;
        if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(int))) {
          error = *static_cast<const int*>(mnl_nlmsg_get_payload(nlh));
        }
        if (error != 0) {
          return kernelError(what, -error, extackText(nlh, sizeof(int)));
        }
        if (interrupted) {
          // The table changed mid-dump; the caller saw an inconsistent view and should retry.
          return fail(std::string(what) + ": dump interrupted by a concurrent change", EAGAIN);
        }
        return {};
      }
      if (nlh->nlmsg_type >= NLMSG_MIN_TYPE && onMessage != nullptr) {
        (*onMessage)(nlh);
      }
    }
  }
}

} // namespace gw
