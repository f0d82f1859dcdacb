/* wclient: a lean load client for the fan-out benchmark, compiled at run time by benchmarks/_common.py.
 *
 * One thread, one epoll, many sockets. Three protocols:
 *   http: W HTTP/1.1 chunked watches (Kubernetes watch: one JSON event per line), one connection each;
 *   grpc: W etcd Watch watches over hand-rolled HTTP/2 (h2c prior knowledge), WPS watches per Watch
 *         stream, SPC streams per connection. HPACK: we send literal headers only and never decode the
 *         server's (we need nothing from them), so no dynamic table state is kept;
 *   h2:   W Kubernetes watches over the same HTTP/2 (h2c prior knowledge), one stream each, WPC
 *         streams per connection; a stream's DATA is the event lines. A response's status is read
 *         from the first byte of its header block (HPACK's indexed ":status: 200" is 0x88).
 *
 * Every event value carries `"bench":"SEQ TS"` (the writer's sequence number and wall-clock ns). The
 * client counts, per watcher, distinct / duplicated / reordered events and a latency histogram.
 *
 * Protocol with the parent: prints "OPEN <seconds> <opened>" once every watch is open (or the open
 * deadline passed), then runs until every watcher has E events, every watcher is gone, or stdin is
 * closed; prints "RESULT k=v ..." and exits.
 *
 * usage: wclient http HOST PORT PATH W E OPEN_TIMEOUT
 *        wclient grpc HOST PORT KEY RANGE_END W E OPEN_TIMEOUT WPS SPC
 *        wclient h2 HOST PORT PATH W E OPEN_TIMEOUT WPC
 *
 * WCLIENT_SOURCES=N in the environment spreads the connections over the source addresses 127.0.0.2 …
 * 127.0.0.(N+1), round robin: one source address has ~28k ephemeral ports towards one server port.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH (1 << 20)
#define HIST_US 200000 /* 1 us buckets up to 200 ms, then 1 ms buckets up to 200 s */
#define HIST_MS 200000

static uint64_t hist_us[HIST_US], hist_ms[HIST_MS], hist_over;
static char *scratch;
static int W, E;
static double open_timeout;

typedef struct {
    uint8_t *seen;
    int distinct, dup, reorder, maxseq, closed, errors;
} watcher_t;
static watcher_t *ws;
static long long total_events, total_lines;
static int opened, done_watchers, closed_watchers;
static double t_first_recv, t_last_recv;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static int64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void record(int w, const char *p, size_t n, int64_t now) {
    /* find "bench":"SEQ TS" near the start of the object */
    static const char pat[] = "\"bench\":\"";
    size_t lim = n < 1024 ? n : 1024;
    const char *m = memmem(p, lim, pat, sizeof pat - 1);
    if (!m) return;
    m += sizeof pat - 1;
    const char *end = p + n;
    long seq = 0;
    while (m < end && *m >= '0' && *m <= '9') seq = seq * 10 + (*m++ - '0');
    if (m >= end || *m != ' ') return;
    m++;
    int64_t ts = 0;
    while (m < end && *m >= '0' && *m <= '9') ts = ts * 10 + (*m++ - '0');
    watcher_t *x = &ws[w];
    if (seq < 0 || seq >= E) return;
    total_events++;
    double t = now_s();
    if (t_first_recv == 0) t_first_recv = t;
    t_last_recv = t;
    if (x->seen[seq >> 3] & (1 << (seq & 7))) {
        x->dup++;
        return;
    }
    x->seen[seq >> 3] |= 1 << (seq & 7);
    if (seq < x->maxseq) x->reorder++;
    if (seq > x->maxseq) x->maxseq = seq;
    x->distinct++;
    if (x->distinct == E) done_watchers++;
    int64_t lat = now - ts;
    if (lat < 0) lat = 0;
    int64_t us = lat / 1000;
    if (us < HIST_US) hist_us[us]++;
    else if (us / 1000 < HIST_MS) hist_ms[us / 1000]++;
    else hist_over++;
}

static double percentile(double q) {
    uint64_t total = hist_over;
    for (int i = 0; i < HIST_US; i++) total += hist_us[i];
    for (int i = 0; i < HIST_MS; i++) total += hist_ms[i];
    if (!total) return -1;
    uint64_t want = (uint64_t)(q * total), acc = 0;
    if (want >= total) want = total - 1;
    for (int i = 0; i < HIST_US; i++) {
        acc += hist_us[i];
        if (acc > want) return i / 1000.0;
    }
    for (int i = 0; i < HIST_MS; i++) {
        acc += hist_ms[i];
        if (acc > want) return i;
    }
    return 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(3);
}

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
static int g_sources; /* WCLIENT_SOURCES: 0 = let the kernel choose the source address */

static int connect_to(const char *host, int port, int idx) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (g_sources > 0) {
        /* the port is chosen at connect(), per 4-tuple, not reserved per address at bind() */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(idx % g_sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct linger lg = {1, 0}; /* RST on close: no TIME_WAIT piling up across runs */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

static void write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                struct timespec d = {0, 100000};
                nanosleep(&d, 0);
                continue;
            }
            return; /* peer gone: the read side will notice */
        }
        p += k;
        n -= k;
    }
}

/* ------------------------------------------------------------------------------------------- HTTP */

enum { H_CONNECTING, H_HEADERS, H_SIZE, H_DATA, H_CRLF, H_DONE };
typedef struct {
    int fd, state, w;
    long remaining;      /* bytes left in the current chunk */
    char *carry;         /* unparsed raw bytes (incomplete headers / chunk size line) */
    size_t carry_len, carry_cap;
    char *line;          /* partial event line spanning reads or chunks */
    size_t line_len, line_cap;
} hconn_t;

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 256;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static void http_line(hconn_t *c, const char *p, size_t n, int64_t now) {
    total_lines++;
    if (n > 15 && memcmp(p, "{\"type\":\"ERROR\"", 15) == 0) {
        ws[c->w].errors++;
        return;
    }
    record(c->w, p, n, now);
}

/* event-stream bytes of one chunk */
static void http_body(hconn_t *c, const char *p, size_t n, int64_t now) {
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            append(&c->line, &c->line_len, &c->line_cap, p, n);
            return;
        }
        size_t k = nl - p;
        if (c->line_len) {
            append(&c->line, &c->line_len, &c->line_cap, p, k);
            http_line(c, c->line, c->line_len, now);
            c->line_len = 0;
        } else {
            http_line(c, p, k, now);
        }
        p += k + 1;
        n -= k + 1;
    }
}

/* returns bytes consumed; stops when it needs more input */
static size_t http_parse(hconn_t *c, const char *p, size_t n, int64_t now) {
    size_t off = 0;
    while (off < n && c->state != H_DONE) {
        const char *q = p + off;
        size_t avail = n - off;
        if (c->state == H_HEADERS) {
            const char *e = memmem(q, avail, "\r\n\r\n", 4);
            if (!e) return off;
            if (avail < 12 || memcmp(q + 9, "200", 3) != 0) {
                fprintf(stderr, "wclient: watch refused: %.*s\n", (int)(avail < 200 ? avail : 200), q);
                c->state = H_DONE;
                return n;
            }
            opened++;
            c->state = H_SIZE;
            off += e + 4 - q;
        } else if (c->state == H_SIZE) {
            const char *e = memmem(q, avail, "\r\n", 2);
            if (!e) return off;
            c->remaining = strtol(q, NULL, 16);
            off += e + 2 - q;
            c->state = c->remaining ? H_DATA : H_DONE;
        } else if (c->state == H_DATA) {
            size_t k = avail < (size_t)c->remaining ? avail : (size_t)c->remaining;
            http_body(c, q, k, now);
            c->remaining -= k;
            off += k;
            if (!c->remaining) c->state = H_CRLF;
        } else if (c->state == H_CRLF) {
            if (avail < 2) return off;
            off += 2;
            c->state = H_SIZE;
        }
    }
    return n;
}

static void http_close(hconn_t *c, int ep) {
    if (c->fd < 0) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    ws[c->w].closed = 1;
    closed_watchers++;
}

/* ------------------------------------------------------------------------------------------- gRPC */

typedef struct {
    uint32_t id;
    int first_w, nwatch, created, ended;
    int *id2w; /* watch_id -> watcher, in order of the "created" answers */
    int id2w_len;
    char *msg; /* gRPC message reassembly; h2: a partial event line */
    size_t msg_len, msg_cap, need; /* need: total bytes of the current message incl. 5-byte prefix */
    uint64_t unacked;
} gstream_t;

typedef struct {
    int fd, nstreams;
    gstream_t *streams;
    char *carry;
    size_t carry_len, carry_cap;
    uint64_t unacked;
    int closed, pending; /* pending: h2, some stream not answered yet */
} gconn_t;

static const char *g_key, *g_end, *g_host, *g_path;
static int g_port, rest; /* rest: the h2 mode (Kubernetes watches), else gRPC */
static int pending_conns;    /* h2 connections whose streams are not all answered yet */

static void frame_header(uint8_t *h, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid) {
    h[0] = len >> 16; h[1] = len >> 8; h[2] = len;
    h[3] = type; h[4] = flags;
    h[5] = sid >> 24; h[6] = sid >> 16; h[7] = sid >> 8; h[8] = sid;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (v & 0x7f) | 0x80; v >>= 7; }
    p[n++] = v;
    return n;
}

static size_t hpack_str(uint8_t *p, const char *s) {
    size_t n = strlen(s), h = 0; /* a string literal, not Huffman-coded: 7-bit prefix length */
    if (n < 127) p[h++] = n;
    else {
        size_t v = n - 127;
        p[h++] = 127;
        while (v >= 128) { p[h++] = (v & 0x7f) | 0x80; v >>= 7; }
        p[h++] = v;
    }
    memcpy(p + h, s, n);
    return h + n;
}

static void window_update(gconn_t *c, uint32_t sid, uint32_t inc) {
    uint8_t f[13];
    frame_header(f, 4, 8, 0, sid);
    f[9] = inc >> 24; f[10] = inc >> 16; f[11] = inc >> 8; f[12] = inc;
    write_all(c->fd, f, 13);
}

static void grpc_start(gconn_t *c) {
    static uint8_t buf[1 << 20];
    size_t n = 0;
    memcpy(buf, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n = 24;
    /* SETTINGS: ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=2^31-1 */
    uint8_t *s = buf + n;
    frame_header(s, 12, 4, 0, 0);
    uint8_t st[12] = {0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff};
    memcpy(s + 9, st, 12);
    n += 21;
    /* connection window to 2^31-1 */
    uint8_t *wu = buf + n;
    uint32_t inc = 0x7fffffff - 65535;
    frame_header(wu, 4, 8, 0, 0);
    wu[9] = inc >> 24; wu[10] = inc >> 16; wu[11] = inc >> 8; wu[12] = inc;
    n += 13;
    char authority[64];
    snprintf(authority, sizeof authority, "%s:%d", g_host, g_port);
    if (rest) { /* one GET per stream, ended with its headers */
        for (int i = 0; i < c->nstreams; i++) {
            uint8_t hb[4200];
            size_t h = 0;
            hb[h++] = 0x82; /* :method GET */
            hb[h++] = 0x86; /* :scheme http */
            hb[h++] = 0x04; /* :path */
            h += hpack_str(hb + h, g_path);
            hb[h++] = 0x01; /* :authority */
            h += hpack_str(hb + h, authority);
            hb[h++] = 0x0f; hb[h++] = 0x04; /* accept (static index 19) */
            h += hpack_str(hb + h, "application/json");
            frame_header(buf + n, h, 1, 5 /* END_STREAM | END_HEADERS */, c->streams[i].id);
            memcpy(buf + n + 9, hb, h);
            n += 9 + h;
        }
        write_all(c->fd, buf, n);
        return;
    }
    for (int i = 0; i < c->nstreams; i++) {
        gstream_t *g = &c->streams[i];
        uint8_t hb[256];
        size_t h = 0;
        hb[h++] = 0x83; /* :method POST */
        hb[h++] = 0x86; /* :scheme http */
        hb[h++] = 0x04; /* :path, literal without indexing, indexed name 4 */
        h += hpack_str(hb + h, "/etcdserverpb.Watch/Watch");
        hb[h++] = 0x01; /* :authority */
        h += hpack_str(hb + h, authority);
        hb[h++] = 0x0f; hb[h++] = 0x10; /* content-type (static index 31) */
        h += hpack_str(hb + h, "application/grpc");
        hb[h++] = 0x00; /* te: trailers, new name */
        h += hpack_str(hb + h, "te");
        h += hpack_str(hb + h, "trailers");
        frame_header(buf + n, h, 1, 4 /* END_HEADERS */, g->id);
        memcpy(buf + n + 9, hb, h);
        n += 9 + h;
        /* one DATA frame with every create request of this stream */
        size_t d0 = n + 9, d = d0;
        for (int k = 0; k < g->nwatch; k++) {
            uint8_t cr[600];
            size_t m = 0, kl = strlen(g_key), el = strlen(g_end);
            cr[m++] = 0x0a; m += put_varint(cr + m, kl); memcpy(cr + m, g_key, kl); m += kl;
            cr[m++] = 0x12; m += put_varint(cr + m, el); memcpy(cr + m, g_end, el); m += el;
            uint8_t wr[620];
            size_t r = 0;
            wr[r++] = 0x0a; r += put_varint(wr + r, m); memcpy(wr + r, cr, m); r += m;
            buf[d] = 0;
            buf[d + 1] = r >> 24; buf[d + 2] = r >> 16; buf[d + 3] = r >> 8; buf[d + 4] = r;
            memcpy(buf + d + 5, wr, r);
            d += 5 + r;
        }
        frame_header(buf + n, d - d0, 0, 0, g->id);
        n = d;
        if (n > sizeof buf - 100000) { fprintf(stderr, "wclient: too many watches per connection\n"); exit(2); }
    }
    if (n > 60000) fprintf(stderr, "wclient: warning: %zu bytes of setup may exceed the peer's window\n", n);
    write_all(c->fd, buf, n);
}

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end) {
    uint64_t v = 0;
    int shift = 0;
    while (*p < end) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    return v;
}

/* skip a field of wire type wt; returns 0 on malformed input */
static int skip_field(const uint8_t **p, const uint8_t *end, int wt) {
    if (wt == 0) rd_varint(p, end);
    else if (wt == 2) { uint64_t l = rd_varint(p, end); if (l > (uint64_t)(end - *p)) return 0; *p += l; }
    else if (wt == 1) *p += 8;
    else if (wt == 5) *p += 4;
    else return 0;
    return *p <= end;
}

static void watch_response(gconn_t *c, gstream_t *g, const uint8_t *p, size_t n, int64_t now) {
    const uint8_t *end = p + n;
    int64_t watch_id = 0; /* proto3 omits a zero watch_id */
    int created = 0, canceled = 0;
    const uint8_t *evs[4096];
    size_t evl[4096];
    int nev = 0;
    /* first pass: scalar fields (events may come before watch_id on the wire in theory) */
    while (p < end) {
        uint64_t tag = rd_varint(&p, end);
        int f = tag >> 3, wt = tag & 7;
        if (f == 2 && wt == 0) watch_id = rd_varint(&p, end);
        else if (f == 3 && wt == 0) created = rd_varint(&p, end);
        else if (f == 4 && wt == 0) canceled = rd_varint(&p, end);
        else if (f == 11 && wt == 2) {
            uint64_t l = rd_varint(&p, end);
            if (l > (uint64_t)(end - p)) return;
            if (nev < 4096) { evs[nev] = p; evl[nev] = l; nev++; }
            p += l;
        } else if (!skip_field(&p, end, wt)) return;
    }
    (void)c;
    if (created) {
        if (watch_id >= 0) {
            if (watch_id >= g->id2w_len) {
                int nl = watch_id + 16;
                g->id2w = realloc(g->id2w, nl * sizeof(int));
                for (int i = g->id2w_len; i < nl; i++) g->id2w[i] = -1;
                g->id2w_len = nl;
            }
            if (g->created < g->nwatch) {
                g->id2w[watch_id] = g->first_w + g->created;
                g->created++;
                opened++;
            }
        }
        return;
    }
    int w = (watch_id >= 0 && watch_id < g->id2w_len) ? g->id2w[watch_id] : -1;
    if (w < 0) return;
    if (canceled) {
        if (!ws[w].closed) { ws[w].closed = 1; closed_watchers++; }
        return;
    }
    for (int i = 0; i < nev; i++) {
        const uint8_t *q = evs[i], *qe = q + evl[i];
        while (q < qe) {
            uint64_t tag = rd_varint(&q, qe);
            int f = tag >> 3, wt = tag & 7;
            if (f == 2 && wt == 2) {
                uint64_t l = rd_varint(&q, qe);
                const uint8_t *kv = q, *kve = q + l;
                q += l;
                while (kv < kve) {
                    uint64_t t2 = rd_varint(&kv, kve);
                    if ((t2 >> 3) == 5 && (t2 & 7) == 2) {
                        uint64_t vl = rd_varint(&kv, kve);
                        record(w, (const char *)kv, vl, now);
                        kv += vl;
                    } else if (!skip_field(&kv, kve, t2 & 7)) break;
                }
            } else if (!skip_field(&q, qe, wt)) break;
        }
    }
}

static void stream_end(gstream_t *g) {
    if (g->ended) return;
    g->ended = 1;
    if (rest) {
        if (!ws[g->first_w].closed) { ws[g->first_w].closed = 1; closed_watchers++; }
        return;
    }
    for (int i = 0; i < g->id2w_len; i++) {
        int w = g->id2w[i];
        if (w >= 0 && !ws[w].closed) { ws[w].closed = 1; closed_watchers++; }
    }
    /* watches never created on this stream */
    for (int k = g->created; k < g->nwatch; k++) {
        int w = g->first_w + k;
        if (!ws[w].closed) { ws[w].closed = 1; closed_watchers++; }
    }
}

/* h2: a stream's DATA is event lines (split across frames anywhere) */
static void rest_data(gstream_t *g, const char *p, size_t n, int64_t now) {
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            append(&g->msg, &g->msg_len, &g->msg_cap, p, n);
            return;
        }
        size_t k = nl - p;
        const char *line = p;
        size_t len = k;
        if (g->msg_len) {
            append(&g->msg, &g->msg_len, &g->msg_cap, p, k);
            line = g->msg, len = g->msg_len;
        }
        total_lines++;
        if (len > 15 && memcmp(line, "{\"type\":\"ERROR\"", 15) == 0) ws[g->first_w].errors++;
        else record(g->first_w, line, len, now);
        g->msg_len = 0;
        p += k + 1;
        n -= k + 1;
    }
}

/* h2: the first HEADERS of a stream is its response */
static void rest_headers(gconn_t *c, gstream_t *g, const uint8_t *p, size_t n) {
    if (g->created) return; /* trailers */
    g->created = 1;
    if (n && p[0] == 0x88) opened++;
    else fprintf(stderr, "wclient: watch refused (status not 200)\n");
    int answered = 0;
    for (int i = 0; i < c->nstreams; i++) answered += c->streams[i].created || c->streams[i].ended;
    if (answered == c->nstreams && c->pending) { c->pending = 0; pending_conns--; }
}

static gstream_t *find_stream(gconn_t *c, uint32_t sid) {
    uint32_t i = (sid - 1) / 2;
    if (sid == 0 || !(sid & 1) || i >= (uint32_t)c->nstreams) return NULL;
    return &c->streams[i];
}

static void grpc_data(gconn_t *c, gstream_t *g, const uint8_t *p, size_t n, int64_t now) {
    while (n) {
        if (g->msg_len == 0 && n >= 5) {
            size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
            if (n >= 5 + len) { /* whole message in place: no copy */
                watch_response(c, g, p + 5, len, now);
                p += 5 + len;
                n -= 5 + len;
                continue;
            }
        }
        if (g->msg_len < 5) {
            size_t k = 5 - g->msg_len < n ? 5 - g->msg_len : n;
            append(&g->msg, &g->msg_len, &g->msg_cap, (const char *)p, k);
            p += k; n -= k;
            if (g->msg_len < 5) return;
            const uint8_t *h = (const uint8_t *)g->msg;
            g->need = 5 + (((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4]);
        }
        size_t k = g->need - g->msg_len < n ? g->need - g->msg_len : n;
        append(&g->msg, &g->msg_len, &g->msg_cap, (const char *)p, k);
        p += k; n -= k;
        if (g->msg_len == g->need) {
            watch_response(c, g, (const uint8_t *)g->msg + 5, g->need - 5, now);
            g->msg_len = 0;
            if (g->msg_cap > 1 << 20) { free(g->msg); g->msg = NULL; g->msg_cap = 0; }
        }
    }
}

static size_t grpc_parse(gconn_t *c, const uint8_t *p, size_t n, int64_t now) {
    size_t off = 0;
    while (n - off >= 9) {
        const uint8_t *h = p + off;
        uint32_t len = (h[0] << 16) | (h[1] << 8) | h[2];
        uint8_t type = h[3], flags = h[4];
        uint32_t sid = ((h[5] & 0x7f) << 24) | (h[6] << 16) | (h[7] << 8) | h[8];
        if (n - off < 9 + (size_t)len) break;
        const uint8_t *pl = h + 9;
        gstream_t *g = find_stream(c, sid);
        if (type == 0) { /* DATA */
            size_t dl = len;
            const uint8_t *dp = pl;
            if (flags & 8) { uint8_t pad = dp[0]; dp++; dl = dl - 1 - pad; }
            if (g) {
                if (rest) rest_data(g, (const char *)dp, dl, now);
                else grpc_data(c, g, dp, dl, now);
                g->unacked += len;
                if (g->unacked > (1u << 30)) { window_update(c, sid, g->unacked); g->unacked = 0; }
                if (flags & 1) stream_end(g);
            }
            c->unacked += len;
            if (c->unacked > (1u << 30)) { window_update(c, 0, c->unacked); c->unacked = 0; }
        } else if (type == 1) { /* HEADERS: not decoded; END_STREAM means trailers */
            if (g && rest) {
                const uint8_t *hp = pl;
                size_t hl = len;
                if (flags & 8) { hl -= 1 + hp[0]; hp++; }
                if (flags & 0x20) { hp += 5; hl -= 5; } /* PRIORITY */
                rest_headers(c, g, hp, hl);
            }
            if (g && (flags & 1)) stream_end(g);
        } else if (type == 3) {
            if (g) stream_end(g);
        } else if (type == 4) {
            if (!(flags & 1)) { uint8_t ack[9]; frame_header(ack, 0, 4, 1, 0); write_all(c->fd, ack, 9); }
        } else if (type == 6) {
            if (!(flags & 1)) {
                uint8_t pong[17];
                frame_header(pong, 8, 6, 1, 0);
                memcpy(pong + 9, pl, 8);
                write_all(c->fd, pong, 17);
            }
        } else if (type == 7) {
            fprintf(stderr, "wclient: GOAWAY from the server\n");
        }
        off += 9 + len;
    }
    return off;
}

static void grpc_close(gconn_t *c, int ep) {
    if (c->closed) return;
    c->closed = 1;
    if (c->pending) { c->pending = 0; pending_conns--; }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (int i = 0; i < c->nstreams; i++) stream_end(&c->streams[i]);
}

/* ------------------------------------------------------------------------------------------- main */

static void carry_then(char **carry, size_t *len, size_t *cap, const char *src, size_t used, size_t n) {
    *len = 0;
    if (used < n) append(carry, len, cap, src + used, n - used);
}

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: see the source\n"); return 2; }
    rest = strcmp(argv[1], "h2") == 0;
    int grpc = strcmp(argv[1], "grpc") == 0 || rest; /* both are HTTP/2 connections of streams */
    const char *host = argv[2];
    int port = atoi(argv[3]);
    const char *path = argv[4];
    int ai = grpc && !rest ? 6 : 5;
    W = atoi(argv[ai]);
    E = atoi(argv[ai + 1]);
    open_timeout = atof(argv[ai + 2]);
    int wps = grpc && !rest ? atoi(argv[ai + 3]) : 1;
    int spc = rest ? atoi(argv[ai + 3]) : grpc ? atoi(argv[ai + 4]) : 1;
    const char *sources = getenv("WCLIENT_SOURCES");
    g_sources = sources ? atoi(sources) : 0;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    scratch = malloc(SCRATCH + 65536);
    ws = calloc(W, sizeof *ws);
    for (int i = 0; i < W; i++) ws[i].seen = calloc(E / 8 + 1, 1), ws[i].maxseq = -1;

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev); /* stdin: EOF = stop */
    double t0 = now_s();
    int reported_open = 0, stop = 0;

    hconn_t *hc = NULL;
    gconn_t *gc = NULL;
    int nconn = 0, next_conn = 0;
    const int max_pending = 128; /* watches being opened at once (listen backlogs are finite) */
    if (grpc) {
        g_key = argv[4]; g_end = argv[5]; g_host = host; g_port = port; g_path = argv[4];
        int streams = (W + wps - 1) / wps;
        nconn = (streams + spc - 1) / spc;
        gc = calloc(nconn, sizeof *gc);
        int w = 0, s = 0;
        for (int i = 0; i < nconn; i++) {
            gconn_t *c = &gc[i];
            c->nstreams = (streams - s) < spc ? (streams - s) : spc;
            c->streams = calloc(c->nstreams, sizeof(gstream_t));
            for (int k = 0; k < c->nstreams; k++, s++) {
                gstream_t *g = &c->streams[k];
                g->id = 1 + 2 * k;
                g->first_w = w;
                g->nwatch = (W - w) < wps ? (W - w) : wps;
                w += g->nwatch;
            }
            c->fd = -1;
        }
        next_conn = 0;
    } else {
        nconn = W;
        hc = calloc(W, sizeof *hc);
        for (int i = 0; i < W; i++) hc[i].fd = -1, hc[i].w = i, hc[i].state = H_CONNECTING;
    }

    struct epoll_event evs[1024];
    while (!stop) {
        /* connect in waves (listen backlogs and the server's cap on connections without a request
           are finite); gRPC connections all at once, as before */
        while (grpc && next_conn < nconn && (!rest || pending_conns < 32)) {
            gconn_t *c = &gc[next_conn];
            c->fd = connect_to(host, port, next_conn);
            struct epoll_event e2 = {.events = EPOLLIN | EPOLLOUT, .data.u64 = next_conn};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e2);
            if (rest) c->pending = 1, pending_conns++;
            next_conn++;
        }
        if (!grpc) { /* open HTTP watches in waves */
            while (next_conn < W && next_conn - opened - closed_watchers < max_pending) {
                hconn_t *c = &hc[next_conn];
                c->fd = connect_to(host, port, next_conn);
                struct epoll_event e2 = {.events = EPOLLIN | EPOLLOUT, .data.u64 = next_conn};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e2);
                next_conn++;
            }
        }
        int n = epoll_wait(ep, evs, 1024, 100);
        int64_t now = wall_ns();
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            if (id == UINT64_MAX) {
                char b[64];
                if (read(0, b, sizeof b) <= 0) stop = 1;
                continue;
            }
            if (grpc) {
                gconn_t *c = &gc[id];
                if (c->closed) continue;
                if (evs[i].events & EPOLLOUT) {
                    int err = 0;
                    socklen_t l = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                    if (err) { fprintf(stderr, "wclient: connect: %s\n", strerror(err)); grpc_close(c, ep); continue; }
                    struct epoll_event e2 = {.events = EPOLLIN, .data.u64 = id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
                    grpc_start(c);
                }
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    for (int rounds = 0; rounds < 4; rounds++) {
                        memcpy(scratch, c->carry, c->carry_len);
                        ssize_t k = read(c->fd, scratch + c->carry_len, SCRATCH);
                        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) { grpc_close(c, ep); break; }
                        if (k < 0) break;
                        size_t tot = c->carry_len + k;
                        size_t used = grpc_parse(c, (uint8_t *)scratch, tot, now);
                        carry_then(&c->carry, &c->carry_len, &c->carry_cap, scratch, used, tot);
                        if (k < SCRATCH) break;
                    }
                }
            } else {
                hconn_t *c = &hc[id];
                if (c->fd < 0) continue;
                if (c->state == H_CONNECTING && (evs[i].events & EPOLLOUT)) {
                    int err = 0;
                    socklen_t l = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                    if (err) { fprintf(stderr, "wclient: connect: %s\n", strerror(err)); http_close(c, ep); continue; }
                    struct epoll_event e2 = {.events = EPOLLIN, .data.u64 = id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
                    char req[1024];
                    int rl2 = snprintf(req, sizeof req,
                                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n"
                                       "User-Agent: wclient\r\n\r\n", path, host, port);
                    write_all(c->fd, req, rl2);
                    c->state = H_HEADERS;
                }
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    for (int rounds = 0; rounds < 4; rounds++) {
                        memcpy(scratch, c->carry, c->carry_len);
                        ssize_t k = read(c->fd, scratch + c->carry_len, SCRATCH);
                        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) { http_close(c, ep); break; }
                        if (k < 0) break;
                        size_t tot = c->carry_len + k;
                        size_t used = http_parse(c, scratch, tot, now);
                        carry_then(&c->carry, &c->carry_len, &c->carry_cap, scratch, used, tot);
                        if (c->state == H_DONE) { http_close(c, ep); break; }
                        if (k < SCRATCH) break;
                    }
                }
            }
        }
        double t = now_s();
        if (!reported_open && (opened + closed_watchers >= W || t - t0 > open_timeout)) {
            reported_open = 1;
            printf("OPEN %.6f %d\n", t - t0, opened);
            fflush(stdout);
        }
        if (reported_open && E > 0 && done_watchers + closed_watchers >= W) stop = 1;
        if (closed_watchers >= W) stop = 1;
    }
    long long distinct = 0, dup = 0, reorder = 0, errors = 0, cut = 0;
    for (int i = 0; i < W; i++) {
        distinct += ws[i].distinct;
        dup += ws[i].dup;
        reorder += ws[i].reorder;
        errors += ws[i].errors;
        if (ws[i].closed && ws[i].distinct < E) cut++;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("RESULT opened=%d distinct=%lld received=%lld dup=%lld reorder=%lld errors=%lld cut=%lld "
           "first=%.6f last=%.6f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f cpu_s=%.4f lines=%lld\n",
           opened, distinct, total_events, dup, reorder, errors, cut, t_first_recv, t_last_recv,
           percentile(0.5), percentile(0.99), percentile(0.99999), cpu, total_lines);
    fflush(stdout);
    return 0;
}
