// SPDX-License-Identifier: MIT
// A NETLINK_ROUTE socket (libmnl) that asks for ACKs with extended ack and matches replies by seq.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"

struct mnl_socket;

namespace gw {

// Room for one request; our requests are far smaller than a page.
inline constexpr size_t kNlRequestSize = 8192;

// A request buffer aligned for nlmsghdr.
struct NlRequest {
  alignas(nlmsghdr) char data[kNlRequestSize];
};

class Netlink {
public:
  using OnMessage = std::function<void(const nlmsghdr*)>;

  // Bound in the calling thread's namespace; a netlink socket keeps its namespace for life.
  static Result<Netlink> open();
  // Bound in another namespace: enter it, create the socket, come back.
  static Result<Netlink> openIn(int nsFd);
  static Result<Netlink> openIn(const std::string& nsName);

  Netlink(Netlink&&) noexcept = default;
  Netlink& operator=(Netlink&&) noexcept = default;
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;
  ~Netlink();

  // Sends `msg` with NLM_F_REQUEST|NLM_F_ACK and a fresh seq, then waits for its ACK. On error
  // the message is `what` plus the kernel's extack text, the code its errno.
  Status request(nlmsghdr* msg, std::string_view what);
  // Same, passing each reply before the ACK (e.g. RTM_NEWLINK answering RTM_GETLINK).
  Status request(nlmsghdr* msg, const OnMessage& onMessage, std::string_view what);
  // Sends `msg` with NLM_F_REQUEST|NLM_F_DUMP and passes every reply until NLMSG_DONE.
  Status dump(nlmsghdr* msg, const OnMessage& onMessage, std::string_view what);

  int fd() const;

private:
  struct Closer {
    void operator()(mnl_socket* sock) const;
  };
  Netlink(std::unique_ptr<mnl_socket, Closer> sock, uint32_t portId, uint32_t seq);
  Status exchange(nlmsghdr* msg, const OnMessage* onMessage, bool isDump, std::string_view what);

  std::unique_ptr<mnl_socket, Closer> sock_;
  uint32_t portId_ = 0;
  uint32_t seq_ = 0;
  std::vector<char> buffer_;
};

} // namespace gw
