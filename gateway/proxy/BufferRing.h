// SPDX-License-Identifier: MIT
// A provided buffer ring (IORING_REGISTER_PBUF_RING): `count` buffers of `size` bytes that the
// kernel picks from when a recv carries IOSQE_BUFFER_SELECT. liburing 2.3 has no
// io_uring_setup_buf_ring, so the ring memory is mmap'ed and registered by hand.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>

#include "base/Error.h"

namespace gw {

class BufferRing {
public:
  BufferRing() = default;
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  ~BufferRing() { reset(); }
  // Unregisters and unmaps; call before the ring is closed (its fd number may be reused).
  void reset();

  // `count` must be a power of two <= 32768.
  Status init(io_uring* ring, uint16_t group, unsigned count, unsigned size);

  uint16_t group() const { return group_; }
  unsigned size() const { return size_; }
  unsigned available() const { return available_; }
  uint8_t* data(uint16_t id) { return buffers_ + static_cast<size_t>(id) * size_; }
  // The kernel handed buffer `id` to a completion: count it as taken.
  void taken() { --available_; }
  // Gives buffer `id` back to the kernel.
  void recycle(uint16_t id);

private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ringBytes_ = 0;
  uint8_t* buffers_ = nullptr;
  size_t bufferBytes_ = 0;
  uint16_t group_ = 0;
  unsigned count_ = 0;
  unsigned size_ = 0;
  unsigned available_ = 0;
};

} // namespace gw
