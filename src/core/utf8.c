#include "core/utf8.h"

size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned c = p[0];
	size_t need;
	uint32_t v;

	if (c < 0x80) {
		if (cp != NULL)
			*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && v < 0x800) || (need == 4 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if (cp != NULL)
		*cp = v;
	return need;
}

bool utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_seq(s + i, n - i, NULL)) == 0)
			return false;
	return true;
}
