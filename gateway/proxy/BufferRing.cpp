// SPDX-License-Identifier: MIT
#include "gateway/proxy/BufferRing.h"

#include <sys/mman.h>

#include <cerrno>
#include <string>

namespace gw {

void BufferRing::reset() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_);
    munmap(br_, ringBytes_);
    br_ = nullptr;
  }
  if (buffers_ != nullptr) {
    munmap(buffers_, bufferBytes_);
    buffers_ = nullptr;
  }
  ring_ = nullptr;
  available_ = 0;
}

Status BufferRing::init(io_uring* ring, uint16_t group, unsigned count, unsigned size) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) {
    return fail("buffer ring: count must be a power of two <= 32768", EINVAL);
  }
  ring_ = ring;
  group_ = group;
  count_ = count;
  size_ = size;
  ringBytes_ = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ringBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return sysError("mmap buffer ring");
  }
  br_ = static_cast<io_uring_buf_ring*>(mem);
  // Buffers are mapped, not allocated: pages are only touched (and resident) once used.
  bufferBytes_ = static_cast<size_t>(count) * size;
  mem = mmap(nullptr, bufferBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return sysError("mmap provided buffers");
  }
  buffers_ = static_cast<uint8_t*>(mem);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int ret = io_uring_register_buf_ring(ring, &reg, 0);
  if (ret < 0) {
    munmap(br_, ringBytes_);
    br_ = nullptr; // not registered: the destructor must not unregister
    return std::unexpected(Error{-ret, "io_uring_register_buf_ring"});
  }
  io_uring_buf_ring_init(br_);
  int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, data(static_cast<uint16_t>(i)), size, static_cast<uint16_t>(i),
                          mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  available_ = count;
  return {};
}

void BufferRing::recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, data(id), size_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
  ++available_;
}

} // namespace gw
