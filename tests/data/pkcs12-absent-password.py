# Writes a PKCS#12 file whose password is *absent* (NULL), as OpenSSL's
# PKCS12_create(NULL, ...) and Windows exports make them: the MAC key is
# derived from a zero-length password, not from the empty BMPString (two
# zero bytes) that `openssl pkcs12 -passout pass:` uses. Through libcrypto,
# since no command-line tool writes one.
#
#   pkcs12-absent-password.py KEY.pem CERT.pem CHAIN.pem OUT.pfx aes|3des
import ctypes
import ctypes.util
import sys

lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
P = ctypes.c_void_p
lib.BIO_new_file.restype = P
lib.BIO_new_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
lib.BIO_free.argtypes = [P]
lib.PEM_read_bio_PrivateKey.restype = P
lib.PEM_read_bio_PrivateKey.argtypes = [P, P, P, P]
lib.PEM_read_bio_X509.restype = P
lib.PEM_read_bio_X509.argtypes = [P, P, P, P]
lib.OPENSSL_sk_new_null.restype = P
lib.OPENSSL_sk_push.argtypes = [P, P]
lib.PKCS12_create.restype = P
lib.PKCS12_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, P, P, P,
                              ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.i2d_PKCS12_bio.argtypes = [P, P]

key_file, cert_file, chain_file, out_file, style = sys.argv[1:6]
key = lib.PEM_read_bio_PrivateKey(lib.BIO_new_file(key_file.encode(), b"r"), None, None, None)
cert = lib.PEM_read_bio_X509(lib.BIO_new_file(cert_file.encode(), b"r"), None, None, None)
assert key and cert, "cannot read the key or the certificate"
cas = lib.OPENSSL_sk_new_null()
bio = lib.BIO_new_file(chain_file.encode(), b"r")
while True:
    ca = lib.PEM_read_bio_X509(bio, None, None, None)
    if not ca:
        break
    lib.OPENSSL_sk_push(cas, ca)
# 0: OpenSSL 3's defaults (PBES2, AES-256-CBC, SHA-256 MAC);
# 146: NID_pbe_WithSHA1And3_Key_TripleDES_CBC, the Windows style.
nid = 0 if style == "aes" else 146
p12 = lib.PKCS12_create(None, b"absent", key, cert, cas, nid, nid, 0, 0, 0)
assert p12, "PKCS12_create failed"
out = lib.BIO_new_file(out_file.encode(), b"wb")
assert lib.i2d_PKCS12_bio(out, p12) == 1
lib.BIO_free(out)
