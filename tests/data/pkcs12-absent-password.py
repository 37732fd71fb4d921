# Writes PKCS#12 files whose password is *absent* (NULL), as OpenSSL's
# PKCS12_create(NULL, ...) and Windows exports make them: the MAC key is
# derived from a zero-length password, not from the empty BMPString.
import ctypes, ctypes.util, sys
lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
lib.BIO_new_file.restype = ctypes.c_void_p
lib.BIO_new_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
lib.PEM_read_bio_PrivateKey.restype = ctypes.c_void_p
lib.PEM_read_bio_PrivateKey.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
lib.PEM_read_bio_X509.restype = ctypes.c_void_p
lib.PEM_read_bio_X509.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
lib.PKCS12_create.restype = ctypes.c_void_p
lib.PKCS12_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.i2d_PKCS12_bio.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
lib.BIO_free.argtypes = [ctypes.c_void_p]
key_file, cert_file, out_file, style = sys.argv[1:5]
bio = lib.BIO_new_file(key_file.encode(), b"r")
key = lib.PEM_read_bio_PrivateKey(bio, None, None, None)
bio2 = lib.BIO_new_file(cert_file.encode(), b"r")
cert = lib.PEM_read_bio_X509(bio2, None, None, None)
assert key and cert
# 0 = OpenSSL 3's defaults (PBES2, AES-256-CBC, SHA-256 MAC);
# NID_pbe_WithSHA1And3_Key_TripleDES_CBC = 146 (the Windows style).
nid = 0 if style == "aes" else 146
p12 = lib.PKCS12_create(None, b"absent", key, cert, None, nid, nid, 0, 0, 0)
assert p12, "PKCS12_create failed"
out = lib.BIO_new_file(out_file.encode(), b"wb")
assert lib.i2d_PKCS12_bio(out, p12) == 1
lib.BIO_free(out)
