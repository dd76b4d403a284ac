/*
 * fuzz_message.c - libFuzzer target: message_read() (header block parsing,
 * -t recipient extraction, line handling) and message_route_headers() on
 * hostile input.  The first byte picks the options.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_opts o = {.sender = "fuzz@example.org",
				 .hostname = "fuzz.example", .id = "ID",
				 .now = 1700000000};
	struct message_info info;
	struct sm_error err;
	int in, out;

	if (size == 0)
		return 0;
	o.ignore_dots = data[0] & 1;
	o.extract = data[0] & 2;
	o.fullname = (data[0] & 4) ? "Fuzz Name" : NULL;
	in = memfd_create("in", 0);
	out = memfd_create("out", 0);
	if (in < 0 || out < 0 || write(in, data + 1, size - 1) < 0)
		abort();
	lseek(in, 0, SEEK_SET);
	if (message_read(in, out, &o, &info, &err) == 0) {
		size_t hl = (size_t)info.header_len, len;
		char *hdr = malloc(hl + 1), *rewritten = NULL;
		struct route_headers rh = {.from_addr = "route@example.org",
					   .from_display = info.from_display,
					   .reply_to = info.from_addr};

		if (hdr == NULL || pread(out, hdr, hl, 0) != (ssize_t)hl)
			abort();
		if (message_route_headers(hdr, hl, &rh, &rewritten, &len,
					  &err) == 0 &&
		    memmem(rewritten, len, "\r\n\r\n", 4) == NULL && hl > 2)
			abort(); /* the blank line must survive */
		free(rewritten);
		free(hdr);
	}
	message_info_free(&info);
	close(in);
	close(out);
	return 0;
}
