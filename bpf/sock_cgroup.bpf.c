// SPDX-License-Identifier: MIT
/* cgroup socket hooks of the gateway host: local access to exposed ports. */
#include "sock.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("cgroup/connect4")
int gw_connect4(struct bpf_sock_addr *ctx)
{
	return sock_redirect(ctx, true);
}

SEC("cgroup/sendmsg4")
int gw_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_redirect(ctx, false);
}

SEC("cgroup/recvmsg4")
int gw_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_restore_peer(ctx);
}

SEC("cgroup/getpeername4")
int gw_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_restore_peer(ctx);
}

SEC("cgroup/connect6")
int gw_connect6(struct bpf_sock_addr *ctx)
{
	return sock_redirect6(ctx, true);
}

SEC("cgroup/sendmsg6")
int gw_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_redirect6(ctx, false);
}

SEC("cgroup/recvmsg6")
int gw_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_restore_peer6(ctx);
}

SEC("cgroup/getpeername6")
int gw_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock_restore_peer6(ctx);
}
