/*
 * fuzz_reply.c - libFuzzer target: server replies as the transport reads
 * them (compat/net.c): whole-reply framing over a socket, reply codes, the
 * printable copy kept for messages, EHLO keyword lookup.  The "server" is
 * the other end of a socketpair holding the fuzz input, then EOF.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const kw[] = {"AUTH", "STARTTLS", "8BITMIME",
					 "SIZE", "PIPELINING"};
	struct tls_params tp = {.verify = false};
	struct net_conn *c = calloc(1, sizeof *c);
	int sv[2];
	long n;

	if (c == NULL || size > 60000 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		free(c);
		return 0;
	}
	if (write(sv[1], data, size) != (ssize_t)size)
		abort();
	close(sv[1]);
	net_init(c, "fuzz.example", 25, 1, &tp, NULL);
	c->fd = sv[0];
	while ((n = net_read_reply(c, net_deadline(c))) > 0) {
		if ((size_t)n > c->inlen)
			abort();
		net_keep_reply(c, c->inbuf, (size_t)n);
		if (memchr(c->reply, '\n', strlen(c->reply)) != NULL ||
		    memchr(c->reply, '\r', strlen(c->reply)) != NULL)
			abort(); /* kept replies are one printable line */
		net_reply_code(c->inbuf);
		for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
			net_ehlo_has(c->inbuf, (size_t)n, kw[k]);
		net_consume(c, (size_t)n);
	}
	close(sv[0]);
	free(c);
	return 0;
}
