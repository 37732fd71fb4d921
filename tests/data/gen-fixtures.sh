#!/usr/bin/env bash
# Regenerates tests/data/fixtures/: certificates, keys, PFX and PEM files made
# by OpenSSL 3 (and Java's keytool for the several-key PFX), as operators make
# them. The files are checked in; run this only to change them:
#
#   tests/data/gen-fixtures.sh
#
# Validity is fixed by `openssl ca -startdate/-enddate` so the fixtures do not
# expire under the tests (leaf certificates run 2025-06-01 to 2045-06-01).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/fixtures"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
cd "$work"

PASS='Passw0rd!'
printf '%s\n' "$PASS" >"$out/password.txt"

cat >ca.cnf <<'EOF'
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = optional
organizationName = optional
[ root_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ int_ext ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
mkdir newcerts
: >index.txt
echo 1000 >serial

# sign NAME SUBJECT EXTFILE_BODY ISSUER START END [MD]
sign() {
  local name=$1 subj=$2 ext=$3 issuer=$4 start=$5 end=$6 md=${7:-sha256}
  printf '[ leaf ]\n%s\n' "$ext" >"$name.ext"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  if [ "$issuer" = self ]; then
    openssl ca -batch -config ca.cnf -selfsign -keyfile "$name.key" -in "$name.csr" \
      -out "$name.pem" -startdate "$start" -enddate "$end" -md "$md" \
      -extfile "$name.ext" -extensions leaf -notext 2>/dev/null
  else
    openssl ca -batch -config ca.cnf -cert "$issuer.pem" -keyfile "$issuer.key" -in "$name.csr" \
      -out "$name.pem" -startdate "$start" -enddate "$end" -md "$md" \
      -extfile "$name.ext" -extensions leaf -notext 2>/dev/null
  fi
}

rsa() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1.key" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key" 2>/dev/null; }

S=20250601000000Z
E=20450601000000Z
LEAF_EXT='basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid'

rsa root 2048
printf '[ leaf ]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n' >root.ext
openssl req -new -key root.key -subj "/CN=certroll Test Root CA/O=Contoso" -out root.csr
openssl ca -batch -config ca.cnf -selfsign -keyfile root.key -in root.csr -out root.pem \
  -startdate 20250101000000Z -enddate 20500101000000Z -extfile root.ext -extensions leaf -notext 2>/dev/null
rsa int 2048
sign int "/CN=certroll Test Issuing CA/O=Contoso" "basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid" root 20250101000000Z 20500101000000Z

rsa oauth1 2048
sign oauth1 "/CN=oauth1.contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:oauth1.contoso.com,DNS:contoso.com" int $S $E
rsa oauth2 3072
sign oauth2 "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com,DNS:oauth2.contoso.com" int $S $E
ec ec1 P-256
sign ec1 "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com" int $S $E
ec ec384 P-384
sign ec384 "/CN=ec384.contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com,DNS:ec384.contoso.com" int $S $E
rsa weak 1024
sign weak "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com" int $S $E
rsa fabrikam 2048
sign fabrikam "/CN=www.fabrikam.com/O=Fabrikam" "$LEAF_EXT
subjectAltName = DNS:www.fabrikam.com" int $S $E
rsa wildcard 2048
sign wildcard "/CN=*.contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:*.contoso.com" int $S $E
rsa expired 2048
sign expired "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com" int 20200101000000Z 20210101000000Z
rsa future 2048
sign future "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com" int 20900101000000Z 20950101000000Z
rsa sha1 2048
sign sha1 "/CN=contoso.com/O=Contoso" "$LEAF_EXT
subjectAltName = DNS:contoso.com" int $S $E sha1
rsa codesign 2048
sign codesign "/CN=contoso.com/O=Contoso" "basicConstraints = CA:FALSE
extendedKeyUsage = codeSigning
subjectAltName = DNS:contoso.com" int $S $E

cat int.pem root.pem >chain.pem
for n in root int oauth1 oauth2 ec1 ec384 weak fabrikam wildcard expired future sha1 codesign; do
  cp "$n.pem" "$out/$n.crt.pem"
done
for n in oauth1 oauth2 ec1 ec384 fabrikam weak; do
  cp "$n.key" "$out/$n.key.pem"
done

pfx() { # NAME SOURCE FRIENDLY [extra openssl options...]
  local name=$1 src=$2 friendly=$3
  shift 3
  openssl pkcs12 -export -inkey "$src.key" -in "$src.pem" -certfile chain.pem \
    -name "$friendly" -passout "pass:$PASS" -out "$out/$name.pfx" "$@"
}
# OpenSSL 3 default: PBES2/AES-256-CBC, SHA-256 MAC.
pfx oauth1-openssl3 oauth1 "OAuth 2026"
# openssl -legacy: RC2-40 certificates, 3DES key, SHA-1 MAC.
pfx oauth1-legacy oauth1 "OAuth 2026" -legacy
# Windows export style: 3DES for both, SHA-1 MAC.
pfx oauth2-windows oauth2 "OAuth 2027" -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1
pfx ec1 ec1 "ec1"
pfx ec384 ec384 "ec384"
pfx weak weak "weak"
pfx fabrikam fabrikam "fabrikam"
pfx wildcard wildcard "wildcard"
pfx expired expired "expired"
pfx future future "future"
pfx sha1 sha1 "sha1"
pfx codesign codesign "codesign"
pfx oauth2 oauth2 "oauth2"
# Empty password, and a non-ASCII one.
openssl pkcs12 -export -inkey oauth1.key -in oauth1.pem -passout pass: -out "$out/oauth1-nopass.pfx"
printf '%s\n' 'pässwörd' >"$out/password-unicode.txt"
openssl pkcs12 -export -inkey oauth1.key -in oauth1.pem -passout 'pass:pässwörd' -out "$out/oauth1-unicode.pfx"
# An absent password (NULL, not empty), as OpenSSL's PKCS12_create(NULL, ...)
# and Windows write it: OpenSSL 3's algorithms, and 3DES.
python3 "$here/pkcs12-absent-password.py" oauth1.key oauth1.pem chain.pem "$out/oauth1-absent-aes.pfx" aes
python3 "$here/pkcs12-absent-password.py" oauth1.key oauth1.pem chain.pem "$out/oauth1-absent-3des.pfx" 3des
# No MAC: no integrity check, must be refused.
openssl pkcs12 -export -inkey oauth1.key -in oauth1.pem -nomac -passout "pass:$PASS" -out "$out/nomac.pfx"
# Exported without its private key.
openssl pkcs12 -export -nokeys -in oauth1.pem -certfile chain.pem -passout "pass:$PASS" -out "$out/oauth1-nokey.pfx"

# Several keys in one file (Java keystore style).
if command -v keytool >/dev/null; then
  for src in ec1 fabrikam; do
    keytool -importkeystore -noprompt -srckeystore "$out/$src.pfx" -srcstoretype PKCS12 \
      -srcstorepass "$PASS" -destkeystore "$out/multi.pfx" -deststoretype PKCS12 \
      -deststorepass "$PASS" >/dev/null 2>&1
  done
  for src in ec1 oauth2; do
    keytool -importkeystore -noprompt -srckeystore "$out/$src.pfx" -srcstoretype PKCS12 \
      -srcstorepass "$PASS" -destkeystore "$out/multi-both.pfx" -deststoretype PKCS12 \
      -deststorepass "$PASS" >/dev/null 2>&1
  done
  # PBES2 with PBKDF2/HMAC-SHA-1 and AES-256-CBC, as OpenSSL 1.1, Java and
  # .NET write it (OpenSSL 3's pkcs12 has no option for the PRF).
  keytool -importkeystore -noprompt -srckeystore "$out/oauth1-openssl3.pfx" -srcstoretype PKCS12 \
    -srcstorepass "$PASS" -destkeystore "$out/oauth1-pbes2-sha1.pfx" -deststoretype PKCS12 \
    -deststorepass "$PASS" \
    -J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA1AndAES_256 \
    -J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA1AndAES_256 \
    -J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA1 >/dev/null 2>&1
else
  echo "keytool not found: multi.pfx, multi-both.pfx and oauth1-pbes2-sha1.pfx not regenerated" >&2
fi

# PEM: everything in one file, out of order (root, key, leaf, intermediate).
cat root.pem oauth1.key oauth1.pem int.pem >"$out/oauth1-bundle.pem"
cp oauth1.pem "$out/oauth1.crt.pem"
openssl x509 -in oauth1.pem -outform DER -out "$out/oauth1.crt.der"
openssl pkey -in oauth1.key -outform DER -out "$out/oauth1.key.der"
openssl rsa -in oauth1.key -traditional -out "$out/oauth1.pkcs1.pem" 2>/dev/null
openssl pkcs8 -topk8 -in oauth1.key -v2 aes-256-cbc -passout "pass:$PASS" -out "$out/oauth1.pkcs8-enc.pem"
openssl pkcs8 -topk8 -in oauth1.key -v2 aes-256-cbc -v2prf hmacWithSHA1 -passout "pass:$PASS" -out "$out/oauth1.pkcs8-sha1.pem"
# More key-derivation work than certroll allows (2,000,000 PBKDF2 iterations).
openssl pkcs8 -topk8 -in oauth1.key -v2 aes-256-cbc -iter 2000000 -passout "pass:$PASS" -out "$out/oauth1.pkcs8-2m-iter.pem"
openssl rsa -in oauth1.key -traditional -aes128 -passout "pass:$PASS" -out "$out/oauth1.legacy-enc.pem" 2>/dev/null
openssl ec -in ec1.key -out "$out/ec1.sec1.pem" 2>/dev/null
openssl ec -in ec384.key -out "$out/ec384.sec1.pem" 2>/dev/null
# PKCS#7 chains (what a CA answers a request with), out of order, DER and PEM.
openssl crl2pkcs7 -nocrl -certfile root.pem -certfile oauth1.pem -certfile int.pem -outform DER -out "$out/oauth1-chain.p7b"
openssl crl2pkcs7 -nocrl -certfile root.pem -certfile oauth1.pem -certfile int.pem -out "$out/oauth1-chain.p7b.pem"
# Broken files.
head -c 700 "$out/oauth1-openssl3.pfx" >"$out/truncated.pfx"
: >"$out/empty.pfx"
printf 'this is not a certificate\n' >"$out/garbage.pfx"
head -c 300 oauth1.pem >"$out/truncated.pem"
echo "fixtures written to $out"
