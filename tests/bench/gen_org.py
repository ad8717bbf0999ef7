#!/usr/bin/env python3
"""Generate a large organisation for org.conf: USERS users, GROUPS groups
nested DEPTH deep (some with two parents), ASSETS assets (shared, private,
public, local and smb paths). Recipients are random X25519 public keys in
age's bech32 form (nobody holds their identities: this measures publishing).

    gen_org.py [--users 10000] [--groups 500] [--depth 4] [--assets 1000] [--seed 1]

Prints the sections to append to an org.conf made by `overcrypt-admin init`.
"""
import argparse
import random

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk


def bech32(hrp, data):
    acc, bits, out = 0, 0, []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + out + [0] * 6
    pm = bech32_polymod(values) ^ 1
    out += [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    # groups in DEPTH levels; each below the top has one parent in the level
    # above, every tenth a second one
    per = max(1, a.groups // a.depth)
    levels = [[f"g{l}_{i}" for i in range(per)] for l in range(a.depth)]
    members = {g: [] for lv in levels for g in lv}
    users = [f"u{i:05d}" for i in range(a.users)]
    for u in users:
        members[rnd.choice(levels[-1])].append(u)
    for l, lv in enumerate(levels):
        for i, g in enumerate(lv):
            print(f"[group {g}]")
            if l:
                parents = [rnd.choice(levels[l - 1])]
                if i % 10 == 0:
                    parents.append(rnd.choice(levels[l - 1]))
                print("parents = " + ", ".join(sorted(set(parents))))
            if members[g]:
                print("members = " + ", ".join(members[g]))
            print()
    for u in users:
        print(f"[user {u}]\nrecipient = {bech32('age', rnd.randbytes(32))}\n")
    for i in range(a.assets):
        kind = ("shared", "shared", "shared", "private", "public")[i % 5]
        if i % 7 == 0:
            path = f"smb://files{i % 13}.corp.local/share{i}/*.*"
        elif kind == "private":
            path = f"/home/%USERNAME%/area{i}/"
        else:
            path = f"/srv/data/a{i}/*.*"
        lvl = levels[rnd.randrange(a.depth)]
        print(f"[asset a{i}]\ntype = {kind}\npath = {path}")
        print("groups = " + ", ".join(sorted({rnd.choice(lvl) for _ in range(2)})))
        if kind == "public":
            print("users = " + ", ".join(rnd.sample(users, 3)))
        print()


if __name__ == "__main__":
    main()
