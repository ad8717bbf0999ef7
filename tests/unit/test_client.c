/* Unit tests of daemon/client: the control socket's client side against a
 * small server thread in a temporary folder: a round trip, replies that are
 * too long, garbage or late, an ok:false reply, and the fallback from the
 * user socket to the system socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "daemon/client.h"

enum srv_mode {
	SRV_ECHO,      /* {"ok":true,"cmd":<the request's cmd>} */
	SRV_REFUSE,    /* {"ok":false,"error":"…","code":"wait","wait_s":4} */
	SRV_LONG,      /* more than OVC_CLIENT_REPLY_MAX bytes, no '\n' */
	SRV_GARBAGE,   /* a line that is not JSON */
	SRV_NO_OK,     /* a JSON object without "ok" */
	SRV_SILENT,    /* never answers */
	SRV_CUT,       /* half a reply, then closes */
};

typedef struct srv {
	int lfd;
	enum srv_mode mode;
	char got[OVC_CLIENT_REQUEST_MAX + 16];  /* the request read */
	size_t ngot;
	pthread_t th;
} srv;

static char tmp[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/ovc-client-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* `<tmp>/<name>`, created as a folder. */
static const char *subdir(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", tmp, name);
	mkdir(buf, 0700);
	return buf;
}

/* A socket bound at `<dir>/control`: listening, or (listen = 0) a stale
 * socket file nobody listens on (the fd is closed). */
static int bind_at(const char *dir, int listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", dir);
	unlink(sa.sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (!listening) {
		close(fd);
		return -1;
	}
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

static void *serve(void *arg)
{
	srv *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	char buf[512];
	ssize_t n;

	if (fd < 0)
		return NULL;
	/* Read the request line (or until the client closes). */
	while (!memchr(s->got, '\n', s->ngot) && s->ngot < sizeof(s->got) - 1 &&
	       (n = recv(fd, s->got + s->ngot, sizeof(s->got) - 1 - s->ngot, 0)) > 0)
		s->ngot += (size_t)n;
	switch (s->mode) {
	case SRV_ECHO: {
		cJSON *req = cJSON_ParseWithLength(s->got, s->ngot);
		const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");

		snprintf(buf, sizeof(buf), "{\"ok\": true, \"cmd\": \"%s\"}  \n",
			 cJSON_IsString(cmd) ? cmd->valuestring : "?");
		cJSON_Delete(req);
		send_str(fd, buf);
		break;
	}
	case SRV_REFUSE:
		send_str(fd, "{\"ok\":false,\"error\":\"too many failed unlocks\","
			 "\"code\":\"wait\",\"wait_s\":4}\n");
		break;
	case SRV_LONG: {
		char *big = malloc(OVC_CLIENT_REPLY_MAX + 100);

		memset(big, ' ', OVC_CLIENT_REPLY_MAX + 100);
		memcpy(big, "{\"ok\":true,\"x\":\"", 16);
		(void)!send(fd, big, OVC_CLIENT_REPLY_MAX + 100, MSG_NOSIGNAL);
		free(big);
		break;
	}
	case SRV_GARBAGE:
		send_str(fd, "{\"ok\":true} trailing\n");
		break;
	case SRV_NO_OK:
		send_str(fd, "{\"status\":\"fine\"}\n");
		break;
	case SRV_SILENT:
		break;
	case SRV_CUT:
		send_str(fd, "{\"ok\":tr");
		break;
	}
	/* Wait for the client to close before closing our side (but cut
	 * a cut reply short). */
	while (s->mode != SRV_CUT && recv(fd, buf, sizeof(buf), 0) > 0)
		;
	close(fd);
	return NULL;
}

static void srv_start(srv *s, const char *dir, enum srv_mode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = bind_at(dir, 1);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void srv_stop(srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static cJSON *request(const char *cmd)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "cmd", cmd);
	return r;
}

/* One exchange against a server in `<tmp>/<name>` in `mode`. */
static int exchange(const char *name, enum srv_mode mode, const cJSON *req,
		    int timeout_ms, cJSON **reply, ovc_err *e, srv *s)
{
	char dir[128], nodir[128];
	int rc;

	subdir(name, dir, sizeof(dir));
	snprintf(nodir, sizeof(nodir), "%s/none", tmp);
	srv_start(s, dir, mode);
	ovc_err_clear(e);
	rc = ovc_client_request(dir, nodir, req, timeout_ms, reply, e);
	srv_stop(s);
	return rc;
}

static void test_round_trip(void **state)
{
	cJSON *req = request("status"), *reply = NULL;
	srv s;
	ovc_err e;

	(void)state;
	cJSON_AddStringToObject(req, "identity", "AGE-SECRET-KEY-1XYZ");
	assert_int_equal(exchange("rt", SRV_ECHO, req, 0, &reply, &e, &s), 0);
	assert_non_null(reply);
	assert_string_equal(cJSON_GetObjectItem(reply, "cmd")->valuestring, "status");
	/* One line, the request as printed, '\n' at the end. */
	assert_int_equal(s.ngot, strlen("{\"cmd\":\"status\",\"identity\":\"AGE-SECRET-KEY-1XYZ\"}\n"));
	assert_memory_equal(s.got, "{\"cmd\":\"status\",\"identity\":\"AGE-SECRET-KEY-1XYZ\"}\n", s.ngot);
	assert_string_equal(ovc_client_code(reply), "");
	cJSON_Delete(reply);
	cJSON_Delete(req);
}

static void test_refused_reply(void **state)
{
	cJSON *req = request("unlock-check"), *reply = NULL;
	srv s;
	ovc_err e;

	(void)state;
	assert_int_equal(exchange("refuse", SRV_REFUSE, req, 0, &reply, &e, &s), -EREMOTEIO);
	assert_non_null(reply);
	assert_string_equal(e.msg, "too many failed unlocks");
	assert_string_equal(ovc_client_code(reply), "wait");
	assert_int_equal(cJSON_GetObjectItem(reply, "wait_s")->valueint, 4);
	cJSON_Delete(reply);
	cJSON_Delete(req);
}

static void test_bad_replies(void **state)
{
	static const struct {
		enum srv_mode mode;
		int rc;
		const char *msg;
	} cases[] = {
		{ SRV_LONG, -EMSGSIZE, "reply is longer than" },
		{ SRV_GARBAGE, -EPROTO, "not a JSON object" },
		{ SRV_NO_OK, -EPROTO, "not a JSON object with \"ok\"" },
		{ SRV_CUT, -EPROTO, "closed the connection" },
	};
	cJSON *req = request("status"), *reply = NULL;
	srv s;
	ovc_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = exchange("bad", cases[i].mode, req, 0, &reply, &e, &s);

		if (rc != cases[i].rc)
			fail_msg("case %zu: %d: %s", i, rc, e.msg);
		assert_null(reply);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: %s", i, e.msg);
	}
	cJSON_Delete(req);
}

static void test_timeout(void **state)
{
	cJSON *req = request("refresh"), *reply = NULL;
	srv s;
	ovc_err e;

	(void)state;
	assert_int_equal(exchange("silent", SRV_SILENT, req, 300, &reply, &e, &s), -ETIMEDOUT);
	assert_null(reply);
	assert_non_null(strstr(e.msg, "no reply from the agent within 1 s"));
	cJSON_Delete(req);
}

static void test_request_checks(void **state)
{
	cJSON *req = request("which"), *reply = NULL, *arr = cJSON_CreateArray();
	char *big = malloc(OVC_CLIENT_REQUEST_MAX + 1);
	srv s;
	ovc_err e;

	(void)state;
	memset(big, 'a', OVC_CLIENT_REQUEST_MAX);
	big[OVC_CLIENT_REQUEST_MAX - 30] = '\0';  /* fits with the rest */
	cJSON_AddStringToObject(req, "path", big);
	assert_int_equal(exchange("req", SRV_ECHO, req, 0, &reply, &e, &s), 0);
	cJSON_Delete(reply);
	cJSON_Delete(req);

	big[OVC_CLIENT_REQUEST_MAX - 30] = 'a';
	big[OVC_CLIENT_REQUEST_MAX] = '\0';
	req = request("which");
	cJSON_AddStringToObject(req, "path", big);
	assert_int_equal(exchange("req", SRV_ECHO, req, 0, &reply, &e, &s), -EMSGSIZE);
	assert_int_equal(s.ngot, 0);  /* nothing was sent */
	assert_null(reply);

	assert_int_equal(exchange("req", SRV_ECHO, arr, 0, &reply, &e, &s), -EINVAL);
	assert_null(reply);
	cJSON_Delete(arr);
	cJSON_Delete(req);
	free(big);
}

static void test_fallback(void **state)
{
	char user[128], sys[128], stale[128];
	cJSON *req = request("status"), *reply = NULL;
	ovc_client c;
	srv s;
	ovc_err e;

	(void)state;
	subdir("user", user, sizeof(user));   /* empty: no socket */
	subdir("sys", sys, sizeof(sys));
	subdir("stale", stale, sizeof(stale));
	bind_at(stale, 0);                    /* nobody listens */
	srv_start(&s, sys, SRV_ECHO);

	/* No socket in the user folder: the system socket. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_client_connect(&c, user, sys, &e), 0);
	assert_true(c.fd >= 0);
	assert_true(strstr(c.path, "/sys/control") != NULL);
	assert_int_equal(c.peer_uid, getuid());
	assert_int_equal(ovc_client_call(&c, req, 0, &reply, &e), 0);
	assert_int_equal(c.fd, -1);
	cJSON_Delete(reply);
	srv_stop(&s);

	/* A stale socket nobody listens on: the system socket too. */
	srv_start(&s, sys, SRV_ECHO);
	assert_int_equal(ovc_client_request(stale, sys, req, 0, &reply, &e), 0);
	cJSON_Delete(reply);
	srv_stop(&s);

	/* A user folder that does not exist: the same. */
	srv_start(&s, sys, SRV_ECHO);
	assert_int_equal(ovc_client_request("/nonexistent/ovc", sys, req, 0, &reply, &e), 0);
	cJSON_Delete(reply);
	srv_stop(&s);

	/* The user socket wins when it is there. */
	srv_start(&s, user, SRV_ECHO);
	assert_int_equal(ovc_client_connect(&c, user, sys, &e), 0);
	assert_true(strstr(c.path, "/user/control") != NULL);
	ovc_client_close(&c);
	ovc_client_close(&c);  /* twice is fine */
	srv_stop(&s);

	/* Neither: no agent, both paths named. */
	cJSON_Delete(req);
	ovc_err_clear(&e);
	assert_int_equal(ovc_client_connect(&c, stale, "/nonexistent/ovc", &e), -ENOENT);
	assert_int_equal(c.fd, -1);
	assert_non_null(strstr(e.msg, "no agent is running (no socket at "));
	assert_non_null(strstr(e.msg, "/stale/control or /nonexistent/ovc/control)"));
	/* The same folder twice is tried once and named once. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_client_connect(&c, "/nonexistent/ovc", "/nonexistent/ovc", &e), -ENOENT);
	assert_string_equal(e.msg, "no agent is running (no socket at /nonexistent/ovc/control)");
}

static void test_long_path(void **state)
{
	char dir[200];
	ovc_client c;
	ovc_err e;

	(void)state;
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	ovc_err_clear(&e);
	assert_int_equal(ovc_client_connect(&c, dir, "/nonexistent/ovc", &e), -ENAMETOOLONG);
	assert_non_null(strstr(e.msg, "too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused_reply),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_request_checks),
		cmocka_unit_test(test_fallback),
		cmocka_unit_test(test_long_path),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
