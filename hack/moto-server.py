"""moto's server, with one speed-up for fleets of user pools.

Every user pool moto creates loads the same signing key from the same file (moto's
cognitoidp/resources/jwks-private.json), and deriving an RSA key from it costs about 100 ms:
creating 10,000 pools would take 17 minutes. The key is loaded once here and shared. Nothing else
changes: the MFA calls behave exactly as moto's.
"""

import json
import sys

from joserfc import jwk

from moto import server

_import_key = jwk.RSAKey.import_key
_keys = {}


def _import_key_once(value, *args, **kwargs):
    cache_key = (json.dumps(value, sort_keys=True, default=str), repr(args), repr(sorted(kwargs.items())))
    if cache_key not in _keys:
        _keys[cache_key] = _import_key(value, *args, **kwargs)
    return _keys[cache_key]


jwk.RSAKey.import_key = _import_key_once

if __name__ == "__main__":
    server.main(sys.argv[1:])
