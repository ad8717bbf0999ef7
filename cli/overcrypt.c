/*
 * overcrypt - the user's command (see overcrypt(1)): the offline commands
 * keygen, encrypt, decrypt, inspect and enroll; passwd for the keystore;
 * and status, which, refresh, lock and unlock, which talk to the agent over
 * its control socket (daemon/client.h).
 *
 * Exit status: 0 success, 1 the work failed, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/cli_util.h"
#include "common/common.h"
#include "crypto/blockfile.h"
#include "crypto/keys.h"
#include "crypto/keystore.h"
#include "daemon/client.h"
#include "daemon/config.h"
#include "policy/rules.h"

#define OVC_VERSION_TEXT "overcrypt 0.1.0"
#define CHUNK (256u * 1024)

static int help_keygen(void)
{
	puts("Usage: overcrypt keygen -o KEYFILE\n"
	     "Create a new asset key with a new key id in KEYFILE (mode 0600; an\n"
	     "existing file is not overwritten) and print the key id.\n\n"
	     "  -o, --output KEYFILE  where to write the key\n"
	     "  -h, --help            show this help");
	return 0;
}

static int help_encrypt(void)
{
	puts("Usage: overcrypt encrypt --key KEYFILE [--key-id ID] FILE...\n"
	     "       overcrypt encrypt --asset NAME FILE...\n"
	     "       overcrypt encrypt --initial [--dry-run] [DIR]\n"
	     "Encrypt each FILE in place, crash-safe (a temporary file in the same\n"
	     "folder, fsync, rename); mode, owner and times are kept. A file that is\n"
	     "already encrypted is reported and left alone.\n\n"
	     "  -k, --key KEYFILE          a keys file, or an age passphrase key export\n"
	     "  -i, --key-id ID            the key to use when KEYFILE holds several\n"
	     "  -p, --passphrase-file F    the key export's passphrase (first line of F)\n"
	     "  -h, --help                 show this help\n\n"
	     "With --asset NAME instead of a key file, the agent encrypts each FILE in\n"
	     "place under that asset's key, which it holds for you: for files in a folder\n"
	     "it overlays where no rule encrypts (where a rule does, the rule decides,\n"
	     "and the command says so). --config FILE reads another config.\n\n"
	     "With --initial, the agent encrypts in place the plaintext files that\n"
	     "already sit under encryption rules: those below DIR (a folder the agent\n"
	     "overlays), or in every folder it overlays. Each file is converted\n"
	     "crash-safely (a temporary file, fsync, rename; mode, owner, times and\n"
	     "xattrs kept) with your keys, whatever plaintext_under_rule says. A run\n"
	     "can be interrupted and started again: encrypted files are skipped. Files\n"
	     "open for writing are skipped and listed. A progress line (files, bytes,\n"
	     "rate, time left) on a terminal, a line per 10 % otherwise; a summary at\n"
	     "the end.\n"
	     "      --dry-run      list what would be converted, change nothing\n"
	     "      --config FILE  read this config instead of the default files\n\n"
	     "Exit status: 0 when every file under a rule is encrypted, 1 when some\n"
	     "were skipped or failed (run it again once they are closed or mended).");
	return 0;
}

static int help_decrypt(void)
{
	puts("Usage: overcrypt decrypt --key KEYFILE [-o OUT] FILE...\n"
	     "       overcrypt decrypt FILE...\n"
	     "Decrypt each FILE in place, or to OUT: with one FILE, OUT is the output\n"
	     "file; with several, a folder (created when missing). A decrypt that fails\n"
	     "leaves no output file behind.\n\n"
	     "  -k, --key KEYFILE          a keys file, or an age passphrase key export\n"
	     "  -p, --passphrase-file F    the key export's passphrase (first line of F)\n"
	     "  -o, --output OUT           where to write the plaintext\n"
	     "      --config FILE          read this config instead of the default files\n"
	     "  -h, --help                 show this help\n\n"
	     "Without --key, the agent decrypts each FILE in place with the keys it holds\n"
	     "for you: only in a folder it overlays where no rule encrypts (where a rule\n"
	     "does, it keeps the file encrypted), and only when your policy allows it\n"
	     "(user_may_decrypt).");
	return 0;
}

static int help_inspect(void)
{
	puts("Usage: overcrypt inspect [--verify --key KEYFILE] FILE...\n"
	     "Show each FILE's format version, flags, key id, file id, plaintext and\n"
	     "backing size. With --verify, authenticate every block and name the\n"
	     "first bad one.\n\n"
	     "  -V, --verify               authenticate every block (needs --key)\n"
	     "  -k, --key KEYFILE          a keys file, or an age passphrase key export\n"
	     "  -p, --passphrase-file F    the key export's passphrase (first line of F)\n"
	     "  -h, --help                 show this help");
	return 0;
}

static int help_enroll(void)
{
	puts("Usage: overcrypt enroll [--keystore PATH] [--passphrase-file F] [--user NAME]\n"
	     "Create your age identity in a new keystore protected by a passphrase\n"
	     "(asked twice on the terminal) and print its recipient (age1...) for\n"
	     "your administrator.\n\n"
	     "  -s, --keystore PATH        default: $XDG_DATA_HOME/overcrypt/keystore.age\n"
	     "  -p, --passphrase-file F    read the passphrase from the first line of F\n"
	     "  -u, --user NAME            the user name the passphrase may not contain\n"
	     "                             (default: your login name)\n"
	     "  -h, --help                 show this help");
	return 0;
}

/* ---- keys ------------------------------------------------------------- */

static ovc_keyset *load_keys(const char *path, const char *passfile)
{
	ovc_keyset *ks = NULL;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_keyset_load(path, NULL, &ks, &e);
	if (rc == -ENOKEY) {
		char *pass = cli_passphrase("Passphrase of the key export: ", passfile, 0);
		if (!pass)
			return NULL;
		ovc_err_clear(&e);
		rc = ovc_keyset_load(path, pass, &ks, &e);
		ovc_secret_free(pass);
	}
	if (rc) {
		cli_err("%s: %s", path, e.msg[0] ? e.msg : strerror(-rc));
		return NULL;
	}
	return ks;
}

static const ovc_key *keyset_lookup(void *ctx, const uint8_t id[OVC_KEY_ID_BYTES])
{
	return ovc_keyset_find(ctx, id);
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	const ovc_key *k;
	ovc_keyset *ks;
	char id[OVC_KEY_ID_STRLEN + 1];
	ovc_err e;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'h')
			return help_keygen();
		else
			return cli_usage("keygen", "bad option");
	}
	if (!out || optind != argc)
		return cli_usage("keygen", out ? "unexpected argument '%s'" : "-o KEYFILE is required",
				 out ? argv[optind] : "");
	ks = ovc_keyset_new(1);
	if (!ks || ovc_keyset_generate(ks, &k) != 0) {
		ovc_keyset_free(ks);
		cli_err("out of secure memory");
		return EXIT_WORK;
	}
	ovc_key_id_format(k->id, id);
	ovc_err_clear(&e);
	rc = ovc_keyset_save(out, ks, &e);
	ovc_keyset_free(ks);
	if (rc) {
		cli_err("%s: %s", out, rc == -EEXIST ? "exists; not overwritten" : (e.msg[0] ? e.msg : strerror(-rc)));
		return EXIT_WORK;
	}
	printf("%s\n", id);
	return 0;
}

/* ---- encrypt ------------------------------------------------------------ */

/* Open `path` for reading as a regular file (never through a symlink). */
static int open_regular(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		cli_err("%s: %s", path, errno == ELOOP ? "is a symbolic link; not followed" : strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		cli_err("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Copy the plaintext of `in` into the new encrypted file on `out`. */
static int encrypt_stream(const char *path, int in, int out, const ovc_key *key,
			  ovc_cipher *c, uint64_t size)
{
	uint8_t *buf = malloc(CHUNK);
	ovc_file *f = NULL;
	cli_progress pr;
	uint64_t off = 0;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	if (!buf)
		return -ENOMEM;
	rc = ovc_file_create(out, key, c, 0, &f, &e);
	cli_progress_start(&pr, "encrypting", size);
	while (!rc) {
		ssize_t n = pread(in, buf, CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ovc_err_set(&e, -errno, "reading: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		ssize_t w = ovc_file_pwrite(f, c, buf, (size_t)n, off, &e);
		if (w < 0)
			rc = (int)w;
		off += (uint64_t)n;
		cli_progress_add(&pr, (uint64_t)n);
	}
	cli_progress_end(&pr);
	if (rc)
		cli_err("%s: %s", path, e.msg[0] ? e.msg : strerror(-rc));
	ovc_file_close(f);
	sodium_memzero(buf, CHUNK);
	free(buf);
	return rc;
}

static int encrypt_one(const char *path, const ovc_key *key, ovc_cipher *c)
{
	char tmp[PATH_MAX], id[OVC_KEY_ID_STRLEN + 1];
	uint8_t head[OVC_HEADER_SIZE];
	struct stat st;
	ovc_header h;
	ssize_t n;
	int in, out, rc;

	in = open_regular(path, &st);
	if (in < 0)
		return EXIT_WORK;
	n = pread(in, head, sizeof(head), 0);
	if (n > 0 && ovc_is_encrypted(head, (size_t)n)) {
		if (ovc_header_decode(head, (size_t)n, &h, NULL) == 0) {
			ovc_key_id_format(h.key_id, id);
			cli_err("%s: already encrypted (key %s); left alone", path, id);
		} else {
			cli_err("%s: already encrypted (damaged header); left alone", path);
		}
		close(in);
		return 0;
	}
	if (st.st_nlink > 1) {
		cli_err("%s: has %ju hard links; encrypting it in place would leave the plaintext in the others",
			path, (uintmax_t)st.st_nlink);
		close(in);
		return EXIT_WORK;
	}
	out = cli_temp_beside(path, tmp);
	if (out < 0) {
		cli_err("%s: cannot create a temporary file beside it: %s", path, strerror(-out));
		close(in);
		return EXIT_WORK;
	}
	rc = encrypt_stream(path, in, out, key, c, (uint64_t)st.st_size);
	close(in);
	if (rc) {
		close(out);
		unlink(tmp);
		return EXIT_WORK;
	}
	return cli_replace(out, tmp, path, &st) ? EXIT_WORK : 0;
}

static const ovc_key *pick_key(const ovc_keyset *ks, const char *want)
{
	uint8_t id[OVC_KEY_ID_BYTES];
	const ovc_key *k;

	if (!want) {
		if (ks->n == 1)
			return &ks->keys[0];
		cli_err("the key file holds %zu keys: pick one with --key-id", ks->n);
		return NULL;
	}
	if (ovc_key_id_parse(want, id) != 0) {
		cli_err("--key-id %s: not a key id (UUID)", want);
		return NULL;
	}
	k = ovc_keyset_find(ks, id);
	if (!k)
		cli_err("key %s is not in the key file", want);
	return k;
}

/* --config FILE of the agent commands (NULL: the default files), given
 * before the command or among its options. */
static const char *config_file;

static int cmd_encrypt_initial(int argc, char **argv);
static int agent_manual(const char *cmd, const char *asset, int argc, char **argv);

static int cmd_encrypt(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "key-id", required_argument, NULL, 'i' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "asset", required_argument, NULL, 'a' },
		{ "config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL, *key_id = NULL, *passfile = NULL, *asset = NULL;
	const ovc_key *key;
	ovc_keyset *ks;
	ovc_cipher *c;
	int ch, status = 0;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--initial"))
			return cmd_encrypt_initial(argc, argv);

	while ((ch = getopt_long(argc, argv, "+k:i:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': keyfile = optarg; break;
		case 'i': key_id = optarg; break;
		case 'p': passfile = optarg; break;
		case 'a': asset = optarg; break;
		case 'C': config_file = optarg; break;
		case 'h': return help_encrypt();
		default: return cli_usage("encrypt", "bad option");
		}
	}
	if (optind == argc)
		return cli_usage("encrypt", "no FILE given");
	if (keyfile && asset)
		return cli_usage("encrypt", "--key and --asset exclude each other");
	if (!keyfile && !asset)
		return cli_usage("encrypt", "--key KEYFILE (a key file) or --asset NAME (through the agent) is required");
	if (asset)
		return agent_manual("encrypt", asset, argc, argv);
	ks = load_keys(keyfile, passfile);
	if (!ks)
		return EXIT_WORK;
	key = pick_key(ks, key_id);
	c = ovc_cipher_new();
	if (!key || !c) {
		if (!c)
			cli_err("cannot set up AES-256-GCM");
		ovc_keyset_free(ks);
		ovc_cipher_free(c);
		return EXIT_WORK;
	}
	for (int i = optind; i < argc; i++)
		if (encrypt_one(argv[i], key, c))
			status = EXIT_WORK;
	ovc_cipher_free(c);
	ovc_keyset_free(ks);
	return status;
}

/* ---- decrypt --------------------------------------------------------------- */

/* Open the encrypted file at `path`: the header is checked and its key
 * found, with messages that name the file. */
static int open_encrypted(const char *path, int fd, const ovc_keyset *ks,
			  ovc_file **f)
{
	uint8_t head[OVC_HEADER_SIZE];
	char id[OVC_KEY_ID_STRLEN + 1];
	ovc_header h;
	ovc_err e;
	ssize_t n = pread(fd, head, sizeof(head), 0);
	int rc;

	ovc_err_clear(&e);
	if (n < 0) {
		cli_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!ovc_is_encrypted(head, (size_t)n)) {
		cli_err("%s: not encrypted (no OVCRYPT1 header); left alone", path);
		return -EINVAL;
	}
	rc = ovc_header_decode(head, (size_t)n, &h, &e);
	if (!rc && !ovc_keyset_find(ks, h.key_id)) {
		ovc_key_id_format(h.key_id, id);
		cli_err("%s is encrypted with key %s, which is not in the key file", path, id);
		return -EACCES;
	}
	if (!rc)
		rc = ovc_file_open(fd, keyset_lookup, (void *)ks, f, &e);
	if (rc)
		cli_err("%s: %s", path, e.msg);
	return rc;
}

static int decrypt_stream(const char *path, ovc_file *f, int out, ovc_cipher *c)
{
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = 0, size = ovc_file_size(f);
	cli_progress pr;
	ovc_err e;
	int rc = 0;

	ovc_err_clear(&e);
	if (!buf)
		return -ENOMEM;
	cli_progress_start(&pr, "decrypting", size);
	while (off < size && !rc) {
		ssize_t n = ovc_file_pread(f, c, buf, CHUNK, off, &e);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			cli_err("%s: %s", path, n < 0 ? e.msg : "ends early");
			break;
		}
		rc = ovc_pwrite_full(out, buf, (size_t)n, (off_t)off);
		if (rc)
			cli_err("%s: writing the output: %s", path, strerror(-rc));
		off += (uint64_t)n;
		cli_progress_add(&pr, (uint64_t)n);
	}
	cli_progress_end(&pr);
	sodium_memzero(buf, CHUNK);
	free(buf);
	return rc;
}

static int decrypt_one(const char *path, const char *dst, const ovc_keyset *ks,
		       ovc_cipher *c)
{
	char tmp[PATH_MAX];
	struct stat st;
	ovc_file *f = NULL;
	int in, out, rc;

	in = open_regular(path, &st);
	if (in < 0)
		return EXIT_WORK;
	if (open_encrypted(path, in, ks, &f)) {
		close(in);
		return EXIT_WORK;
	}
	out = cli_temp_beside(dst, tmp);
	if (out < 0) {
		cli_err("%s: cannot create a temporary file beside it: %s", dst, strerror(-out));
		rc = EXIT_WORK;
		goto out;
	}
	rc = decrypt_stream(path, f, out, c);
	if (rc) {
		close(out);
		unlink(tmp);
		rc = EXIT_WORK;
		goto out;
	}
	if (strcmp(dst, path) != 0) { /* a new file: ours, not the source's owner */
		st.st_uid = geteuid();
		st.st_gid = getegid();
	}
	rc = cli_replace(out, tmp, dst, &st) ? EXIT_WORK : 0;
out:
	ovc_file_close(f);
	close(in);
	return rc;
}

static int cmd_decrypt(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "output", required_argument, NULL, 'o' },
		{ "config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL, *passfile = NULL, *out = NULL;
	ovc_keyset *ks;
	ovc_cipher *c;
	int ch, status = 0, nfiles;

	while ((ch = getopt_long(argc, argv, "+k:p:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': keyfile = optarg; break;
		case 'p': passfile = optarg; break;
		case 'o': out = optarg; break;
		case 'C': config_file = optarg; break;
		case 'h': return help_decrypt();
		default: return cli_usage("decrypt", "bad option");
		}
	}
	nfiles = argc - optind;
	if (nfiles == 0)
		return cli_usage("decrypt", "no FILE given");
	if (!keyfile && (out || passfile))
		return cli_usage("decrypt", "-o and --passphrase-file need --key KEYFILE");
	if (!keyfile)
		return agent_manual("decrypt", NULL, argc, argv);
	if (out && nfiles > 1 && mkdir(out, 0700) < 0 && errno != EEXIST) {
		cli_err("%s: cannot create the output folder: %s", out, strerror(errno));
		return EXIT_WORK;
	}
	ks = load_keys(keyfile, passfile);
	if (!ks)
		return EXIT_WORK;
	c = ovc_cipher_new();
	if (!c) {
		cli_err("cannot set up AES-256-GCM");
		ovc_keyset_free(ks);
		return EXIT_WORK;
	}
	for (int i = optind; i < argc; i++) {
		char dst[PATH_MAX], copy[PATH_MAX];
		const char *target = argv[i];

		if (out && nfiles == 1) {
			target = out;
		} else if (out) {
			snprintf(copy, sizeof(copy), "%s", argv[i]);
			if (snprintf(dst, sizeof(dst), "%s/%s", out, basename(copy)) >= (int)sizeof(dst)) {
				cli_err("%s: output path too long", argv[i]);
				status = EXIT_WORK;
				continue;
			}
			target = dst;
		}
		if (decrypt_one(argv[i], target, ks, c))
			status = EXIT_WORK;
	}
	ovc_cipher_free(c);
	ovc_keyset_free(ks);
	return status;
}

/* ---- inspect ---------------------------------------------------------------- */

static int inspect_one(const char *path, const ovc_keyset *ks, ovc_cipher *c)
{
	uint8_t head[OVC_HEADER_SIZE];
	char id[OVC_KEY_ID_STRLEN + 1], fid[2 * OVC_FILE_ID_BYTES + 1];
	uint64_t plain, nslots, bad;
	struct stat st;
	ovc_header h;
	ovc_file *f = NULL;
	ovc_err e;
	ssize_t n;
	int fd, rc = 0;

	ovc_err_clear(&e);
	fd = open_regular(path, &st);
	if (fd < 0)
		return EXIT_WORK;
	n = pread(fd, head, sizeof(head), 0);
	if (n < 0 || !ovc_is_encrypted(head, (size_t)n)) {
		printf("%s: plaintext (not encrypted), %jd bytes\n", path, (intmax_t)st.st_size);
		close(fd);
		return 0;
	}
	if (ovc_header_decode(head, (size_t)n, &h, &e) != 0) {
		cli_err("%s: damaged header: %s", path, e.msg);
		close(fd);
		return EXIT_WORK;
	}
	ovc_key_id_format(h.key_id, id);
	sodium_bin2hex(fid, sizeof(fid), h.file_id, sizeof(h.file_id));
	printf("%s:\n  format:     overcrypt file format v%u\n  flags:      %s\n"
	       "  key id:     %s\n  file id:    %s\n",
	       path, h.version, h.flags & OVC_FLAG_SPARSE ? "sparse" : "none", id, fid);
	if (ovc_layout_plain_size((uint64_t)st.st_size, &plain, &nslots, &e) != 0) {
		printf("  backing:    %jd bytes\n", (intmax_t)st.st_size);
		cli_err("%s: %s", path, e.msg);
		close(fd);
		return EXIT_WORK;
	}
	printf("  plaintext:  %llu bytes\n  backing:    %jd bytes in %llu blocks\n",
	       (unsigned long long)plain, (intmax_t)st.st_size, (unsigned long long)nslots);
	if (ks) {
		if (open_encrypted(path, fd, ks, &f)) {
			rc = EXIT_WORK;
		} else if (ovc_file_verify(f, c, &bad, &e) != 0) {
			cli_err("%s: %s", path, e.msg);
			rc = EXIT_WORK;
		} else {
			printf("  verified:   all %llu blocks authenticate\n", (unsigned long long)nslots);
		}
	}
	fflush(stdout);
	ovc_file_close(f);
	close(fd);
	return rc;
}

static int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verify", no_argument, NULL, 'V' },
		{ "key", required_argument, NULL, 'k' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL, *passfile = NULL;
	ovc_keyset *ks = NULL;
	ovc_cipher *c = NULL;
	int ch, verify = 0, status = 0;

	while ((ch = getopt_long(argc, argv, "+Vk:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'V': verify = 1; break;
		case 'k': keyfile = optarg; break;
		case 'p': passfile = optarg; break;
		case 'h': return help_inspect();
		default: return cli_usage("inspect", "bad option");
		}
	}
	if (verify != !!keyfile)
		return cli_usage("inspect", "--verify and --key go together");
	if (optind == argc)
		return cli_usage("inspect", "no FILE given");
	if (verify) {
		ks = load_keys(keyfile, passfile);
		c = ovc_cipher_new();
		if (!ks || !c) {
			ovc_keyset_free(ks);
			ovc_cipher_free(c);
			return EXIT_WORK;
		}
	}
	for (int i = optind; i < argc; i++)
		if (inspect_one(argv[i], ks, c))
			status = EXIT_WORK;
	ovc_cipher_free(c);
	ovc_keyset_free(ks);
	return status;
}

/* ---- enroll -------------------------------------------------------------------- */

/* Create the folders above `path` (mode 0700) as needed. */
static int make_parents(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int default_keystore(char *out, size_t len)
{
	const char *data = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	struct passwd *pw;

	if (data && data[0] == '/')
		return snprintf(out, len, "%s/overcrypt/keystore.age", data) < (int)len ? 0 : -1;
	if (!home || home[0] != '/') {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home)
		return -1;
	return snprintf(out, len, "%s/.local/share/overcrypt/keystore.age", home) < (int)len ? 0 : -1;
}

static int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 's' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keystore = NULL, *passfile = NULL, *user = NULL;
	char path[PATH_MAX], rcp[OVC_AGE_RECIPIENT_STRLEN + 1];
	ovc_age_identity *id = NULL;
	ovc_age_recipient r;
	struct passwd *pw;
	char *pass;
	ovc_err e;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "+s:p:u:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': keystore = optarg; break;
		case 'p': passfile = optarg; break;
		case 'u': user = optarg; break;
		case 'h': return help_enroll();
		default: return cli_usage("enroll", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage("enroll", "unexpected argument '%s'", argv[optind]);
	if (!keystore) {
		if (default_keystore(path, sizeof(path)) != 0) {
			cli_err("no home folder: give --keystore PATH");
			return EXIT_WORK;
		}
		keystore = path;
	}
	if (!user) {
		pw = getpwuid(getuid());
		user = pw ? pw->pw_name : NULL;
	}
	if (access(keystore, F_OK) == 0) {
		cli_err("%s: a keystore exists already; not overwritten", keystore);
		return EXIT_WORK;
	}
	if (!passfile)
		fprintf(stderr, "Choose a passphrase for your keystore: at least %d characters with\n"
			"upper and lower case letters, a digit and a special character.\n",
			OVC_KEYSTORE_MIN_PASS);
	pass = cli_passphrase("Keystore passphrase: ", passfile, 1);
	if (!pass)
		return EXIT_WORK;
	ovc_err_clear(&e);
	rc = make_parents(keystore);
	if (rc)
		ovc_err_set(&e, rc, "cannot create its folder: %s", strerror(-rc));
	else
		rc = ovc_keystore_create(keystore, pass, user, &id, &e);
	ovc_secret_free(pass);
	if (rc) {
		cli_err("%s: %s", keystore, e.msg[0] ? e.msg : strerror(-rc));
		return EXIT_WORK;
	}
	ovc_age_identity_recipient(id, &r);
	ovc_age_identity_free(id);
	ovc_age_recipient_encode(&r, rcp);
	fprintf(stderr, "Keystore created at %s.\nGive this recipient to your administrator:\n", keystore);
	printf("%s\n", rcp);
	return 0;
}

/* ---- the agent: status, which, refresh, lock, unlock; passwd ------------------------ */

/* The highest scrypt work factor `unlock` accepts (2^20 KiB = 1 GiB). */
#define UNLOCK_MAX_LOGN 20

/* The options every agent command takes besides its own. */
#define AGENT_OPTS \
	{ "config", required_argument, NULL, 'C' }, \
	{ "help", no_argument, NULL, 'h' }, \
	{ NULL, 0, NULL, 0 }

/* getopt_long() that takes --config itself. */
static int agent_getopt(int argc, char **argv, const char *shortopts,
			const struct option *opts)
{
	int c;

	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) == 'C')
		config_file = optarg;
	return c;
}

/* Load the user-mode config (--config FILE, or the default files). On a
 * problem every message is printed and EXIT_USAGE returned. */
static int load_config(ovc_config **cfg)
{
	ovc_config_opts o;
	ovc_diag d = { 0 };
	int rc;

	ovc_config_opts_env(&o, OVC_CONFIG_USER, config_file);
	rc = ovc_config_load(&o, cfg, &d);
	for (size_t i = 0; i < d.n; i++)
		cli_err("%s", d.lines[i]);
	if (rc && d.n == 0)
		cli_err("cannot load the config: %s", strerror(-rc));
	ovc_diag_free(&d);
	return rc ? EXIT_USAGE : 0;
}

/* Send `req` (consumed; NULL: an empty object) with "cmd": `cmd` to the
 * agent. Returns 0 with *reply (ok: true); -EREMOTEIO with *reply and the
 * agent's sentence in `e` (printed unless `quiet`); else prints why and
 * returns the error (*reply NULL). */
static int agent_call(const ovc_config *cfg, const char *cmd, cJSON *req,
		      int timeout_ms, int quiet, cJSON **reply, ovc_err *e)
{
	int rc;

	*reply = NULL;
	if (!req)
		req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cmd", cmd)) {
		cJSON_Delete(req);
		cli_err("out of memory");
		return -ENOMEM;
	}
	ovc_err_clear(e);
	rc = ovc_client_request(cfg->runtime_dir, NULL, req, timeout_ms, reply, e);
	cJSON_Delete(req);
	if (rc && (rc != -EREMOTEIO || !quiet))
		cli_err("%s", e->msg);
	return rc;
}

/* The config, then one request with no arguments but "cmd": the exit
 * status (0 or EXIT_WORK, EXIT_USAGE for the config); *reply on success.
 * A negative timeout_ms means "as long as the agent may take to fetch":
 * two requests of [server] timeout each, and some slack. */
static int agent_simple(const char *cmd, int timeout_ms, cJSON **reply)
{
	ovc_config *cfg = NULL;
	ovc_err e;
	int rc = load_config(&cfg);

	*reply = NULL;
	if (rc)
		return rc;
	if (timeout_ms < 0)
		timeout_ms = (cfg->timeout_s * 2 + 20) * 1000;
	rc = agent_call(cfg, cmd, NULL, timeout_ms, 0, reply, &e);
	ovc_config_free(cfg);
	if (rc) {
		cJSON_Delete(*reply);
		*reply = NULL;
		return EXIT_WORK;
	}
	return 0;
}

/* A command with no options of its own that sends just "cmd": -1 with
 * *reply to go on, else the exit status (0 after --help). */
static int agent_plain(int argc, char **argv, const char *cmd, int (*help)(void),
		       int timeout_ms, cJSON **reply)
{
	static const struct option opts[] = { AGENT_OPTS };
	int c = agent_getopt(argc, argv, "+h", opts), rc;

	if (c == 'h')
		return help();
	if (c != -1)
		return cli_usage(cmd, "bad option");
	if (optind != argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	rc = agent_simple(cmd, timeout_ms, reply);
	return rc ? rc : -1;
}

static const char *jstr(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A string member or `none`. */
static const char *jstr_or(const cJSON *o, const char *name, const char *none)
{
	const char *s = jstr(o, name);

	return s ? s : none;
}

static int help_status(void)
{
	puts("Usage: overcrypt status [--json]\n"
	     "Show what the agent is doing: its state, the policy it holds, the last\n"
	     "and the next refresh, whether your keys are unlocked, the rules, and the\n"
	     "mounts (state, rules under each, bytes and files served), with warnings\n"
	     "about files still open after a lock and processes that bypass an overlay.\n"
	     "Exit status 1 when no agent runs.\n\n"
	     "  -j, --json         print the agent's answer as JSON\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help");
	return 0;
}

/* One rule as "ASSET  TYPE  PATH". */
static void print_rule(const char *label, const cJSON *r)
{
	printf("%-10s%s  %s  %s\n", label, jstr_or(r, "asset", "?"),
	       jstr_or(r, "type", "?"), jstr_or(r, "path", "?"));
}

/* A byte count for people: "512 B", "3.4 MiB". */
static void human_bytes(double b, char out[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (b >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		b /= 1024;
		u++;
	}
	snprintf(out, 32, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

/* "a, b, c" of a JSON array of strings into `out`. */
static void join_strings(const cJSON *a, char *out, size_t n)
{
	const cJSON *it;
	size_t len = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(it, a) {
		int w;

		if (!cJSON_IsString(it))
			continue;
		w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", it->valuestring);
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
}

/* Under a mount on an SMB share: "share //HOST/SHARE at MOUNTPOINT, via
 * rule PATH (asset NAME), …". */
static void print_share(const cJSON *sh)
{
	const cJSON *r;
	const char *sep = ", via rule ";

	if (!cJSON_IsObject(sh))
		return;
	printf("%-10s  share %s at %s", "", jstr_or(sh, "source", "?"), jstr_or(sh, "mountpoint", "?"));
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(sh, "rules")) {
		printf("%s%s (asset %s)", sep, jstr_or(r, "path", "?"), jstr_or(r, "asset", "?"));
		sep = ", ";
	}
	puts("; network: no writeback cache");
}

/* One line per mount: "PATH  STATE[: REASON] (rules: …), counters". */
static void print_mount(const char *label, const cJSON *m)
{
	const char *state = jstr_or(m, "state", "?");
	char rules[512], rd[32], wr[32];

	printf("%-10s%s  %s", label, jstr_or(m, "path", "?"), state);
	if (jstr(m, "reason"))
		printf(": %s", jstr(m, "reason"));
	join_strings(cJSON_GetObjectItemCaseSensitive(m, "rules"), rules, sizeof(rules));
	if (rules[0])
		printf(" (rules: %s)", rules);
	if (!strcmp(state, "mounted") || !strcmp(state, "pending-unmount")) {
		human_bytes(jnum(m, "bytes_read"), rd);
		human_bytes(jnum(m, "bytes_written"), wr);
		printf("; %s read, %s written, %.0f files opened, %.0f open now", rd, wr,
		       jnum(m, "files_opened"), jnum(m, "open_handles"));
	}
	putchar('\n');
	print_share(cJSON_GetObjectItemCaseSensitive(m, "share"));
}

/* The warnings about a mount: files opened with keys since dropped, and
 * processes that bypass the overlay. */
static void print_mount_warnings(const cJSON *m)
{
	const char *path = jstr_or(m, "path", "?");
	double after = jnum(m, "open_after_lock");
	const cJSON *b;

	if (after > 0)
		printf("warning:  %s: %.0f file%s opened before the lock %s still open "
		       "(readable until closed)\n", path, after, after == 1 ? "" : "s",
		       after == 1 ? "is" : "are");
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(m, "bypassing"))
		printf("warning:  %s: pid %.0f (%s) was inside the folder before the overlay "
		       "was mounted: it bypasses the overlay (what it writes there is not "
		       "encrypted) until it leaves the folder or restarts\n", path,
		       jnum(b, "pid"), jstr_or(b, "command", "?"));
}

static void print_mounts(const cJSON *mounts)
{
	const char *label = "mounts:";
	const cJSON *it;

	cJSON_ArrayForEach(it, mounts) {
		if (cJSON_IsObject(it)) {
			print_mount(label, it);
			label = "";
		}
	}
	if (*label)
		puts("mounts:   none");
	cJSON_ArrayForEach(it, mounts)
		if (cJSON_IsObject(it))
			print_mount_warnings(it);
}

static void print_status(const cJSON *r)
{
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(r, "policy");
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(r, "refresh");
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(r, "rules");
	const cJSON *mounts = cJSON_GetObjectItemCaseSensitive(r, "mounts");
	const cJSON *it;
	const char *label;
	double wait = jnum(r, "unlock_wait_s");

	printf("agent:    %s mode, user %s (uid %.0f)\n", jstr_or(r, "mode", "?"),
	       jstr_or(r, "user", "?"), jnum(r, "uid"));
	printf("state:    %s since %s", jstr_or(r, "state", "?"),
	       jstr_or(r, "state_since", "?"));
	if (jstr(r, "reason") && jstr(r, "reason")[0])
		printf(" (%s)", jstr(r, "reason"));
	putchar('\n');
	if (cJSON_IsObject(pol)) {
		printf("policy:   serial %.0f from %s (org %s)%s\n", jnum(pol, "serial"),
		       jstr_or(pol, "source", "?"), jstr_or(pol, "org", "?"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pol, "from_cache")) ?
		       ", from the cache" : "");
		printf("          issued %s, valid until %s\n", jstr_or(pol, "issued_at", "?"),
		       jstr_or(pol, "valid_until", "-"));
	} else {
		puts("policy:   none");
	}
	if (cJSON_IsObject(ref)) {
		printf("refresh:  last %s (%s), last success %s\n",
		       jstr_or(ref, "last_attempt", "never"), jstr_or(ref, "last_result", "-"),
		       jstr_or(ref, "last_success", "never"));
		if (jstr(ref, "last_error"))
			printf("          last error: %s (%.0f failures in a row)\n",
			       jstr(ref, "last_error"), jnum(ref, "failures"));
		printf("          next %s\n", jstr_or(ref, "next", "-"));
	}
	printf("expires:  %s\n", jstr_or(r, "expires_at", "-"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "locked")))
		puts("keys:     locked");
	else
		printf("keys:     unlocked, %.0f key%s\n", jnum(r, "keys"), jnum(r, "keys") == 1 ? "" : "s");
	if (wait > 0)
		printf("unlock:   wait %.0f s (%.0f failed unlocks)\n", wait,
		       jnum(r, "unlock_failures"));
	label = "rules:";
	cJSON_ArrayForEach(it, rules) {
		print_rule(label, it);
		label = "";
	}
	if (*label)
		puts("rules:    none");
	print_mounts(mounts);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, AGENT_OPTS };
	cJSON *reply;
	char *txt;
	int c, json = 0, rc;

	while ((c = agent_getopt(argc, argv, "+jh", opts)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h')
			return help_status();
		else
			return cli_usage("status", "bad option");
	}
	if (optind != argc)
		return cli_usage("status", "unexpected argument '%s'", argv[optind]);
	rc = agent_simple("status", 0, &reply);
	if (rc)
		return rc;
	if (json) {
		cJSON_DeleteItemFromObjectCaseSensitive(reply, "ok");
		txt = cJSON_Print(reply);
		if (txt)
			puts(txt);
		cJSON_free(txt);
		rc = txt ? 0 : EXIT_WORK;
	} else {
		print_status(reply);
	}
	cJSON_Delete(reply);
	return rc;
}

static int help_which(void)
{
	puts("Usage: overcrypt which PATH\n"
	     "Ask the agent which rule applies to PATH (made absolute against the\n"
	     "current folder, without following links; it need not exist) and why.\n\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help");
	return 0;
}

/* `in` made absolute against the current folder and cleaned lexically
 * ("." and empty parts dropped, ".." takes off the part before it); a
 * trailing '/' is kept. Returns 0 or -errno. */
static int absolute_path(const char *in, char *out, size_t len)
{
	char buf[PATH_MAX * 2], cwd[PATH_MAX];
	size_t n = 0, inlen = strlen(in);
	char *save = NULL, *part;

	if (in[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
	} else {
		cwd[0] = '\0';
	}
	if (snprintf(buf, sizeof(buf), "%s/%s", cwd, in) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, ".") || !part[0])
			continue;
		if (!strcmp(part, "..")) {
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		if (n + 1 + strlen(part) + 2 > len)
			return -ENAMETOOLONG;
		out[n++] = '/';
		memcpy(out + n, part, strlen(part));
		n += strlen(part);
	}
	if (n == 0 || (inlen > 0 && in[inlen - 1] == '/'))
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* One rule member of which's reply: "shared asset 'x' via PATH, key ID",
 * "the same as the rule" when it equals `same`, or `none`. */
static void print_which_rule(const char *what, const cJSON *r, const cJSON *same,
			     const char *none)
{
	if (!cJSON_IsObject(r))
		printf("%s %s\n", what, none);
	else if (same && cJSON_IsObject(same) && cJSON_Compare(r, same, 1))
		printf("%s the same\n", what);
	else
		printf("%s %s asset '%s' via %s, key %s\n", what, jstr_or(r, "type", "?"),
		       jstr_or(r, "asset", "?"), jstr_or(r, "path", "?"),
		       jstr_or(r, "key_id", "none"));
}

/* A command with one PATH argument (made absolute, into `path`) that the
 * agent answers: -1 with *reply set, or the exit status. */
static int path_call(int argc, char **argv, const char *cmd, int (*help)(void),
		     char path[PATH_MAX], cJSON **reply)
{
	static const struct option opts[] = { AGENT_OPTS };
	ovc_config *cfg = NULL;
	cJSON *req;
	ovc_err e;
	int c, rc;

	*reply = NULL;
	while ((c = agent_getopt(argc, argv, "+h", opts)) != -1) {
		if (c == 'h')
			return help();
		return cli_usage(cmd, "bad option");
	}
	if (argc - optind != 1)
		return cli_usage(cmd, argc == optind ? "PATH is required" : "one PATH only");
	rc = absolute_path(argv[optind], path, PATH_MAX);
	if (rc) {
		cli_err("%s: %s", argv[optind], strerror(-rc));
		return EXIT_WORK;
	}
	rc = load_config(&cfg);
	if (rc)
		return rc;
	req = cJSON_CreateObject();
	if (req && !cJSON_AddStringToObject(req, "path", path)) {
		cJSON_Delete(req);
		req = NULL;
	}
	rc = req ? agent_call(cfg, cmd, req, 0, 0, reply, &e) : -ENOMEM;
	ovc_config_free(cfg);
	if (rc) {
		if (!req)
			cli_err("out of memory");
		cJSON_Delete(*reply);
		*reply = NULL;
		return EXIT_WORK;
	}
	return -1;
}

static int cmd_which(int argc, char **argv)
{
	char path[PATH_MAX];
	cJSON *reply = NULL;
	int rc = path_call(argc, argv, "which", help_which, path, &reply);

	if (rc >= 0)
		return rc;
	{
		const cJSON *rule = cJSON_GetObjectItemCaseSensitive(reply, "rule");

		printf("%s\n", jstr_or(reply, "explanation", jstr_or(reply, "path", path)));
		print_which_rule("rule:", rule, NULL, "none (passthrough)");
		print_which_rule("folder:", cJSON_GetObjectItemCaseSensitive(reply, "folder_rule"),
				 rule, "not an encrypted folder");
		print_which_rule("new files:", cJSON_GetObjectItemCaseSensitive(reply, "create_rule"),
				 rule, "plaintext");
	}
	if (cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(reply, "key_held")))
		printf("%s %s\n", "key held:",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "key_held")) ? "yes" : "no");
	cJSON_Delete(reply);
	return 0;
}

static int help_unmount(void)
{
	puts("Usage: overcrypt unmount PATH\n"
	     "Take down an SMB share mounted at PATH together with the overlays on it,\n"
	     "in the right order: the overlays first, then the share. A plain 'umount'\n"
	     "takes only the top overlay, which the agent mounts again at once. Refused\n"
	     "while files are open on the overlays; in system mode only root may do it.\n\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help");
	return 0;
}

static int cmd_unmount(int argc, char **argv)
{
	char path[PATH_MAX];
	cJSON *reply = NULL;
	int rc = path_call(argc, argv, "unmount", help_unmount, path, &reply);

	if (rc >= 0)
		return rc;
	printf("unmounted %s (share %s) and its overlays\n", jstr_or(reply, "mountpoint", path),
	       jstr_or(reply, "share", "?"));
	cJSON_Delete(reply);
	return 0;
}

static int help_repair(void)
{
	puts("Usage: overcrypt repair [--dry-run] [--force] FILE...\n"
	     "Bring encrypted files with a torn tail (a crash during a write; reads\n"
	     "near the end fail with an input/output error naming the block) back to a\n"
	     "readable state: the agent cuts each back to its longest authenticated\n"
	     "prefix, using your keys. FILE is a path in a folder the agent overlays\n"
	     "(made absolute, no link followed); close it first.\n\n"
	     "      --dry-run      only say what would be cut\n"
	     "      --force        also cut when a damaged block has intact blocks after\n"
	     "                     it (that is no torn tail: everything after the damage\n"
	     "                     is lost)\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help\n\n"
	     "Exit status: 0 when every file is intact or was repaired, 1 otherwise.");
	return 0;
}

static int repair_one(const ovc_config *cfg, const char *arg, int force, int dry)
{
	char path[PATH_MAX];
	cJSON *req, *reply = NULL;
	ovc_err e;
	int rc = absolute_path(arg, path, sizeof(path));

	if (rc) {
		cli_err("%s: %s", arg, strerror(-rc));
		return EXIT_WORK;
	}
	req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "path", path) ||
	    !cJSON_AddBoolToObject(req, "force", force) ||
	    !cJSON_AddBoolToObject(req, "dry_run", dry)) {
		cJSON_Delete(req);
		cli_err("out of memory");
		return EXIT_WORK;
	}
	rc = agent_call(cfg, "repair", req, 120000, 0, &reply, &e);
	if (rc) {
		cJSON_Delete(reply);
		return EXIT_WORK;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "intact")))
		printf("%s: intact (%.0f blocks)\n", arg, jnum(reply, "slots"));
	else
		printf("%s: %s back to %.0f bytes (%.0f of %.0f blocks kept; block %.0f was the first that failed)%s\n",
		       arg, dry ? "would be cut" : "cut", jnum(reply, "size"), jnum(reply, "kept"),
		       jnum(reply, "slots"), jnum(reply, "first_bad"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "resealed"))
		       ? "; the new last block resealed" : "");
	cJSON_Delete(reply);
	return 0;
}

static int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		AGENT_OPTS
	};
	ovc_config *cfg = NULL;
	int c, rc, force = 0, dry = 0, bad = 0;

	while ((c = agent_getopt(argc, argv, "+h", opts)) != -1) {
		switch (c) {
		case 'h': return help_repair();
		case 'n': dry = 1; break;
		case 'f': force = 1; break;
		default: return cli_usage("repair", "bad option");
		}
	}
	if (argc == optind)
		return cli_usage("repair", "FILE is required");
	rc = load_config(&cfg);
	if (rc)
		return rc;
	for (int i = optind; i < argc; i++)
		if (repair_one(cfg, argv[i], force, dry))
			bad = 1;
	ovc_config_free(cfg);
	return bad ? EXIT_WORK : 0;
}

/* `overcrypt encrypt --asset NAME FILE...` and `overcrypt decrypt FILE...`
 * without a key file: each FILE (from optind on) in place, by the agent,
 * with the keys it holds for you. */
static int agent_manual(const char *cmd, const char *asset, int argc, char **argv)
{
	ovc_config *cfg = NULL;
	int rc = load_config(&cfg), bad = 0;

	if (rc)
		return rc;
	for (int i = optind; i < argc; i++) {
		char path[PATH_MAX];
		cJSON *req, *reply = NULL;
		ovc_err e;

		rc = absolute_path(argv[i], path, sizeof(path));
		if (rc) {
			cli_err("%s: %s", argv[i], strerror(-rc));
			bad = 1;
			continue;
		}
		req = cJSON_CreateObject();
		if (!req || !cJSON_AddStringToObject(req, "path", path) ||
		    (asset && !cJSON_AddStringToObject(req, "asset", asset))) {
			cJSON_Delete(req);
			cli_err("out of memory");
			bad = 1;
			break;
		}
		if (agent_call(cfg, cmd, req, 3600 * 1000, 0, &reply, &e) == 0)
			printf("%s: %s%s\n", argv[i], asset ? "encrypted under asset " : "decrypted",
			       asset ? asset : "");
		else
			bad = 1;
		cJSON_Delete(reply);
	}
	ovc_config_free(cfg);
	return bad ? EXIT_WORK : 0;
}

/* ---- encrypt --initial ---------------------------------------------------- */

struct ifile {
	char *path;
	uint64_t size;
};

/* What the walk collects (nftw has no context argument). */
static struct {
	struct ifile *v;
	size_t n, cap;
	uint64_t bytes;
	size_t stray;          /* ".ovc-rewrite.*" left by an interrupted run */
	int err;
} walk;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *base = path + ftw->base;

	if (type == FTW_DNR || type == FTW_NS) {
		cli_err("%s: cannot read: %s", path, strerror(errno));
		walk.err = 1;
		return 0;
	}
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (!strncmp(base, ".ovc-rewrite.", 13)) {
		walk.stray++;
		return 0;
	}
	if (walk.n == walk.cap) {
		size_t cap = walk.cap ? walk.cap * 2 : 1024;
		struct ifile *v = realloc(walk.v, cap * sizeof(*v));

		if (!v)
			return -1;
		walk.v = v;
		walk.cap = cap;
	}
	walk.v[walk.n].path = strdup(path);
	if (!walk.v[walk.n].path)
		return -1;
	walk.v[walk.n++].size = (uint64_t)st->st_size;
	walk.bytes += (uint64_t)st->st_size;
	return 0;
}

/* Progress of a long run: on a terminal one line rewritten (files, bytes,
 * rate, time left) at most 5 times a second; otherwise a line at each 10 %. */
struct iprog {
	size_t files, nfiles;
	uint64_t bytes, nbytes;
	double t0, last;
	int tty, decile;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void iprog_show(struct iprog *p, int final)
{
	double t = now_s(), el = t - p->t0, rate = el > 0 ? (double)p->bytes / el : 0;
	double frac = p->nbytes ? (double)p->bytes / (double)p->nbytes
				: p->nfiles ? (double)p->files / (double)p->nfiles : 1;
	char left[32] = "-";

	if (rate > 0 && p->nbytes > p->bytes)
		snprintf(left, sizeof(left), "%.0f s", (double)(p->nbytes - p->bytes) / rate);
	if (p->tty) {
		if (!final && t - p->last < 0.2)
			return;
		p->last = t;
		fprintf(stderr, "\rinitial encryption: %zu/%zu files, %.1f/%.1f MiB, %.1f MB/s, %s left   %s",
			p->files, p->nfiles, (double)p->bytes / 1048576, (double)p->nbytes / 1048576,
			rate / 1e6, left, final ? "\n" : "");
		return;
	}
	/* the last file printed 100 % already: the final call adds nothing */
	if ((int)(frac * 10) <= p->decile && (!final || p->decile == 10))
		return;
	p->decile = (int)(frac * 10);
	fprintf(stderr, "initial encryption: %3.0f%%: %zu/%zu files, %.1f/%.1f MiB, %.1f MB/s, %s left\n",
		frac * 100, p->files, p->nfiles, (double)p->bytes / 1048576,
		(double)p->nbytes / 1048576, rate / 1e6, left);
}

/* The folders to walk: DIR (which must lie in a folder the agent has
 * mounted), or every folder it has mounted. */
static int initial_roots(const ovc_config *cfg, const char *dir, char ***roots, size_t *n)
{
	cJSON *reply = NULL, *m;
	ovc_err e;
	char path[PATH_MAX];
	int rc, inside = 0;

	*roots = NULL;
	*n = 0;
	if (dir) {
		rc = absolute_path(dir, path, sizeof(path));
		if (rc) {
			cli_err("%s: %s", dir, strerror(-rc));
			return EXIT_USAGE;
		}
		if (strlen(path) > 1 && path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = 0;
	}
	if (agent_call(cfg, "status", NULL, 10000, 0, &reply, &e)) {
		cJSON_Delete(reply);
		return EXIT_WORK;
	}
	m = cJSON_GetObjectItemCaseSensitive(reply, "mounts");
	*roots = calloc((size_t)cJSON_GetArraySize(m) + 1, sizeof(char *));
	for (cJSON *x = m ? m->child : NULL; *roots && x; x = x->next) {
		const char *mp = jstr(x, "path");

		if (!mp || strcmp(jstr_or(x, "state", ""), "mounted"))
			continue;
		if (!dir)
			(*roots)[(*n)++] = strdup(mp);
		else if (ovc_path_within(path, mp))
			inside = 1;
	}
	cJSON_Delete(reply);
	if (!*roots) {
		cli_err("out of memory");
		return EXIT_WORK;
	}
	if (dir && !inside) {
		cli_err("%s is in no folder this agent overlays (see overcrypt status)", path);
		return EXIT_WORK;
	}
	if (dir && !((*roots)[(*n)++] = strdup(path)))
		return EXIT_WORK;
	if (*n == 0)
		cli_err("the agent overlays no folder: nothing to encrypt");
	return 0;
}

/* One file through the agent: "converted", "encrypted", "no-rule"; else
 * NULL with the agent's code ("busy", "nokey", "failed") and message. */
static const char *initial_one(const ovc_config *cfg, const char *path, int dry,
			       char *code, size_t clen, char *msg, size_t mlen)
{
	static char result[16];
	cJSON *req = cJSON_CreateObject(), *reply = NULL;
	ovc_err e;
	int rc;

	if (!req || !cJSON_AddStringToObject(req, "path", path) ||
	    !cJSON_AddBoolToObject(req, "dry_run", dry)) {
		cJSON_Delete(req);
		snprintf(code, clen, "internal");
		snprintf(msg, mlen, "out of memory");
		return NULL;
	}
	rc = agent_call(cfg, "convert", req, 3600 * 1000, 1, &reply, &e);
	if (rc == 0) {
		snprintf(result, sizeof(result), "%s", jstr_or(reply, "result", "?"));
		cJSON_Delete(reply);
		return result;
	}
	/* no answer at all (agent gone, already printed): "agent" stops the run */
	snprintf(code, clen, "%s", rc != -EREMOTEIO ? "agent" :
		 reply ? jstr_or(reply, "code", "failed") : "failed");
	snprintf(msg, mlen, "%s", e.msg);
	cJSON_Delete(reply);
	return NULL;
}

static int cmd_encrypt_initial(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "initial", no_argument, NULL, 'I' },
		{ "dry-run", no_argument, NULL, 'n' },
		AGENT_OPTS
	};
	ovc_config *cfg = NULL;
	char **roots = NULL, code[32], msg[600];
	size_t nroots = 0, conv = 0, done = 0, norule = 0, busy = 0, failed = 0;
	struct iprog pr = { 0 };
	int c, rc, dry = 0;

	while ((c = agent_getopt(argc, argv, "+h", opts)) != -1) {
		switch (c) {
		case 'h': return help_encrypt();
		case 'I': break;
		case 'n': dry = 1; break;
		default: return cli_usage("encrypt", "bad option (with --initial: --dry-run, --config, DIR)");
		}
	}
	if (argc - optind > 1)
		return cli_usage("encrypt", "--initial takes at most one DIR");
	rc = load_config(&cfg);
	if (rc)
		return rc;
	rc = initial_roots(cfg, optind < argc ? argv[optind] : NULL, &roots, &nroots);
	for (size_t r = 0; rc == 0 && r < nroots; r++) {
		if (!roots[r] || nftw(roots[r], walk_one, 32, FTW_PHYS | FTW_MOUNT) != 0) {
			cli_err("%s: %s", roots[r] ? roots[r] : "(folder)", strerror(errno));
			rc = EXIT_WORK;
		}
	}
	pr.nfiles = walk.n;
	pr.nbytes = walk.bytes;
	pr.t0 = now_s();
	pr.tty = isatty(STDERR_FILENO);
	for (size_t k = 0; rc == 0 && k < walk.n; k++) {
		const char *res = initial_one(cfg, walk.v[k].path, dry, code, sizeof(code),
					      msg, sizeof(msg));

		if (!res && !strcmp(code, "agent")) {
			rc = EXIT_WORK;
			break;
		} else if (!res && !strcmp(code, "busy")) {
			busy++;
			cli_err("%s: skipped: %s", walk.v[k].path, msg);
		} else if (!res) {
			failed++;
			cli_err("%s: failed: %s", walk.v[k].path, msg);
		} else if (!strcmp(res, "converted")) {
			conv++;
			if (dry)
				printf("would encrypt %s\n", walk.v[k].path);
		} else if (!strcmp(res, "encrypted")) {
			done++;
		} else {
			norule++;
		}
		pr.files++;
		pr.bytes += walk.v[k].size;
		if (!dry)
			iprog_show(&pr, 0);
	}
	if (rc == 0 && !dry && walk.n)
		iprog_show(&pr, 1);
	if (rc == 0) {
		printf("%s %zu file%s (%.1f MiB looked at); already encrypted: %zu; not under an encryption rule: %zu; skipped (open for writing): %zu; failed: %zu\n",
		       dry ? "would encrypt" : "encrypted", conv, conv == 1 ? "" : "s",
		       (double)walk.bytes / 1048576, done, norule, busy, failed);
		if (walk.stray)
			printf("%zu temporary file%s (.ovc-rewrite.*) left by an interrupted conversion: the originals are intact; remove them\n",
			       walk.stray, walk.stray == 1 ? "" : "s");
		if (busy || failed || walk.err)
			rc = EXIT_WORK;
	}
	for (size_t k = 0; k < walk.n; k++)
		free(walk.v[k].path);
	free(walk.v);
	for (size_t r = 0; r < nroots; r++)
		free(roots[r]);
	free(roots);
	ovc_config_free(cfg);
	return rc;
}

static int help_refresh(void)
{
	puts("Usage: overcrypt refresh\n"
	     "Make the agent fetch your policy now and wait until the fetch is over\n"
	     "(at most twice the config's [server] timeout). Prints the policy's serial and whether it\n"
	     "is new; exit status 1, with the reason, when the fetch failed or the\n"
	     "document was refused (the last good policy stays applied).\n\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help");
	return 0;
}

static int cmd_refresh(int argc, char **argv)
{
	cJSON *reply;
	int rc = agent_plain(argc, argv, "refresh", help_refresh, -1, &reply);

	if (rc >= 0)
		return rc;
	printf("policy serial %.0f (%s)\n", jnum(reply, "serial"), jstr_or(reply, "result", "?"));
	cJSON_Delete(reply);
	return 0;
}

static int help_lock(void)
{
	puts("Usage: overcrypt lock\n"
	     "Make the agent forget your identity and your keys: encrypted files stay\n"
	     "unreadable until 'overcrypt unlock'.\n\n"
	     "      --config FILE  read this config instead of the default files\n"
	     "  -h, --help         show this help");
	return 0;
}

static int cmd_lock(int argc, char **argv)
{
	cJSON *reply;
	int rc = agent_plain(argc, argv, "lock", help_lock, 0, &reply);

	if (rc >= 0)
		return rc;
	puts("locked");
	cJSON_Delete(reply);
	return 0;
}

static int help_unlock(void)
{
	puts("Usage: overcrypt unlock [--passphrase-file F]\n"
	     "Open your keystore ([client] keystore in the config) with its passphrase\n"
	     "and hand your identity to the agent, which then holds your keys. The\n"
	     "passphrase never leaves this process. After failed tries the agent makes\n"
	     "you wait (1 s, doubling, at most 15 minutes).\n\n"
	     "  -p, --passphrase-file F  read the passphrase from the first line of F\n"
	     "      --config FILE        read this config instead of the default files\n"
	     "  -h, --help               show this help");
	return 0;
}

/* Tell the agent about a wrong passphrase and print the wait it sets. */
static void unlock_failed(const ovc_config *cfg)
{
	cJSON *reply;
	ovc_err e;

	if (agent_call(cfg, "unlock-failed", NULL, 0, 0, &reply, &e) == 0 &&
	    jnum(reply, "wait_s") > 0)
		fprintf(stderr, "wait %.0f s before the next try\n", jnum(reply, "wait_s"));
	cJSON_Delete(reply);
}

/* The identity in `ks` opened with a passphrase, sent to the agent. */
static int unlock_with(const ovc_config *cfg, const char *passfile)
{
	const char *ks = cfg->keystore;
	char prompt[PATH_MAX + 32], *pass, *idtxt;
	ovc_age_identity *id = NULL;
	cJSON *req, *reply;
	ovc_err e;
	int rc;

	snprintf(prompt, sizeof(prompt), "Passphrase for %s: ", ks);
	pass = cli_passphrase(prompt, passfile, 0);
	if (!pass)
		return EXIT_WORK;
	ovc_err_clear(&e);
	rc = ovc_keystore_unlock(ks, pass, UNLOCK_MAX_LOGN, &id, &e);
	ovc_secret_free(pass);
	if (rc) {
		cli_err("%s: %s", ks, e.msg[0] ? e.msg : strerror(-rc));
		if (rc == -EBADMSG)
			unlock_failed(cfg);
		return EXIT_WORK;
	}
	idtxt = ovc_secret_alloc(OVC_AGE_IDENTITY_STRLEN + 1);
	req = cJSON_CreateObject();
	if (idtxt)
		ovc_age_identity_encode(id, idtxt);
	ovc_age_identity_free(id);
	if (!idtxt || !req || !cJSON_AddStringToObject(req, "identity", idtxt)) {
		ovc_secret_free(idtxt);
		cJSON_Delete(req);
		cli_err("out of memory");
		return EXIT_WORK;
	}
	ovc_secret_free(idtxt);
	rc = agent_call(cfg, "unlock", req, 0, 0, &reply, &e);
	if (rc == 0) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "pending")))
			puts("unlocked: the identity is held until a policy arrives");
		else
			printf("unlocked: %.0f key%s\n", jnum(reply, "keys"), jnum(reply, "keys") == 1 ? "" : "s");
	}
	cJSON_Delete(reply);
	return rc ? EXIT_WORK : 0;
}

static int cmd_unlock(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "passphrase-file", required_argument, NULL, 'p' }, AGENT_OPTS };
	const char *passfile = NULL;
	ovc_config *cfg = NULL;
	cJSON *reply;
	ovc_err e;
	int c, rc;

	while ((c = agent_getopt(argc, argv, "+p:h", opts)) != -1) {
		if (c == 'p')
			passfile = optarg;
		else if (c == 'h')
			return help_unlock();
		else
			return cli_usage("unlock", "bad option");
	}
	if (optind != argc)
		return cli_usage("unlock", "unexpected argument '%s'", argv[optind]);
	rc = load_config(&cfg);
	if (rc)
		return rc;
	if (!cfg->keystore) {
		cli_err("no keystore: set [client] keystore in the config");
		ovc_config_free(cfg);
		return EXIT_WORK;
	}
	rc = agent_call(cfg, "unlock-check", NULL, 0, 1, &reply, &e);
	if (rc == -EREMOTEIO && !strcmp(ovc_client_code(reply), "wait"))
		cli_err("too many failed unlocks: try again in %.0f s", jnum(reply, "wait_s"));
	else if (rc == -EREMOTEIO)
		cli_err("%s", e.msg);
	cJSON_Delete(reply);
	rc = rc ? EXIT_WORK : unlock_with(cfg, passfile);
	ovc_config_free(cfg);
	return rc;
}

static int help_passwd(void)
{
	puts("Usage: overcrypt passwd [--passphrase-file OLD] [--new-passphrase-file NEW]\n"
	     "Change the passphrase of your keystore ([client] keystore in the config);\n"
	     "the identity stays the same. The new passphrase is asked twice on the\n"
	     "terminal and must meet the password policy. No agent is needed.\n\n"
	     "  -p, --passphrase-file OLD      read the current passphrase from OLD\n"
	     "  -n, --new-passphrase-file NEW  read the new passphrase from NEW\n"
	     "      --config FILE              read this config instead of the default files\n"
	     "  -h, --help                     show this help");
	return 0;
}

static int cmd_passwd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "new-passphrase-file", required_argument, NULL, 'n' }, AGENT_OPTS };
	const char *oldfile = NULL, *newfile = NULL;
	char prompt[PATH_MAX + 32], *old = NULL, *new_pass = NULL;
	ovc_config *cfg = NULL;
	ovc_err e;
	int c, rc;

	while ((c = agent_getopt(argc, argv, "+p:n:h", opts)) != -1) {
		switch (c) {
		case 'p': oldfile = optarg; break;
		case 'n': newfile = optarg; break;
		case 'h': return help_passwd();
		default: return cli_usage("passwd", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage("passwd", "unexpected argument '%s'", argv[optind]);
	rc = load_config(&cfg);
	if (rc)
		return rc;
	rc = EXIT_WORK;
	if (!cfg->keystore) {
		cli_err("no keystore: set [client] keystore in the config");
		goto out;
	}
	snprintf(prompt, sizeof(prompt), "Current passphrase for %s: ", cfg->keystore);
	old = cli_passphrase(prompt, oldfile, 0);
	if (!old)
		goto out;
	if (!newfile)
		fprintf(stderr, "Choose a new passphrase: at least %d characters with upper and\n"
			"lower case letters, a digit and a special character.\n",
			OVC_KEYSTORE_MIN_PASS);
	new_pass = cli_passphrase("New passphrase: ", newfile, 1);
	if (!new_pass)
		goto out;
	ovc_err_clear(&e);
	if (ovc_keystore_passwd(cfg->keystore, old, new_pass, cfg->user, &e) != 0) {
		cli_err("%s: %s", cfg->keystore, e.msg);
		goto out;
	}
	fprintf(stderr, "The passphrase of %s is changed.\n", cfg->keystore);
	rc = 0;
out:
	ovc_secret_free(old);
	ovc_secret_free(new_pass);
	ovc_config_free(cfg);
	return rc;
}

/* ---- main --------------------------------------------------------------------------- */

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "keygen", cmd_keygen, "create a new asset key in a key file" },
	{ "encrypt", cmd_encrypt, "encrypt files in place with a key file" },
	{ "decrypt", cmd_decrypt, "decrypt files in place or to another place" },
	{ "inspect", cmd_inspect, "show (and verify) an encrypted file's header" },
	{ "enroll", cmd_enroll, "create your identity in a new keystore" },
	{ "status", cmd_status, "show what the agent is doing" },
	{ "which", cmd_which, "show which rule applies to a path, and why" },
	{ "repair", cmd_repair, "cut a torn tail of encrypted files (after a crash)" },
	{ "unmount", cmd_unmount, "take down an SMB share and its overlays, in order" },
	{ "refresh", cmd_refresh, "make the agent fetch your policy now" },
	{ "lock", cmd_lock, "make the agent forget your keys" },
	{ "unlock", cmd_unlock, "open your keystore and give the agent your keys" },
	{ "passwd", cmd_passwd, "change your keystore's passphrase" },
};

static int usage(FILE *out)
{
	fprintf(out, "Usage: overcrypt [--help] [--version] [--config FILE] COMMAND [ARGS...]\n\n"
		"Transparent, policy-driven file encryption: the user's command.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'overcrypt COMMAND --help' describes each. Exit status: 0 success,\n"
		"1 the work failed, 2 bad usage. See overcrypt(1).\n");
	return out == stdout ? 0 : EXIT_USAGE;
}

int main(int argc, char **argv)
{
	int i = 1;

	if (ovc_common_init() != 0) {
		cli_err("libsodium failed to start");
		return EXIT_WORK;
	}
	/* Global options: --config FILE (or --config=FILE). */
	while (i < argc && !strncmp(argv[i], "--config", 8)) {
		if (!strncmp(argv[i], "--config=", 9)) {
			config_file = argv[i++] + 9;
		} else if (argv[i][8] != '\0') {
			break;
		} else if (i + 1 < argc) {
			config_file = argv[i + 1];
			i += 2;
		} else {
			return cli_usage(NULL, "--config needs a FILE");
		}
	}
	if (i >= argc)
		return usage(stderr);
	if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help"))
		return usage(stdout);
	if (!strcmp(argv[i], "--version")) {
		puts(OVC_VERSION_TEXT);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			int rc;
			optind = 1;
			rc = commands[k].run(argc - i, argv + i);
			if (fflush(stdout) != 0)
				rc = EXIT_WORK;
			return rc;
		}
	}
	return cli_usage(NULL, "unknown command '%s'", argv[i]);
}
