#!/usr/bin/env python3
"""Differential SBS driver: encode/decode through the real ``hat.sbs``.

Runs under the venv made by scripts/python-venv.sh (hat-sbs 0.7.6). It is a
long-running line protocol: one JSON request per line on stdin, one JSON
response per line on stdout (flushed after each), until EOF. Diagnostics, if
any, go to stderr. A bad request never ends the process; it is answered with
``{"error": "<message>"}``. Blank input lines are ignored (no response).

Requests
--------

  {"op": "encode", "schema": S, "module": "M", "type": "T", "value": V}
      -> {"hex": "<lowercase hex of the SBS bytes>"}

  {"op": "decode", "schema": S, "module": "M", "type": "T", "hex": "..."}
      -> {"value": V}

  {"op": "ping"}  -> {"ok": true}      (liveness check)

  anything that fails -> {"error": "<ExceptionType: message>"}

``S`` is either SBS schema source text (e.g. ``"module Test\\nT = Integer"``),
from which a ``hat.sbs.Repository`` is built (repositories are cached by the
exact text), or ``null``: then the repository is the one made of the JSON
repositories shipped in the installed packages, i.e.
``hat/drivers/chatter/sbs_repo.json`` (module HatChatter) and
``hat/event/common/sbs_repo.json`` (modules HatEventer, HatEventAdminer) and
``hat/monitor/sbs_repo.json`` (module HatObserver, hat-monitor 0.8.23),
combined exactly as hat-sbs does it: ``Repository.from_json(path)`` for each,
then ``Repository(repo_a, repo_b)``. ``S`` may also be an array of source
texts (one module each) when a schema spans several modules.

Optional request key ``"serializer"``: ``"default"`` (the default; in hat-sbs
0.7.6 that is the C extension ``CSerializer`` when it imports, which is what
hat-event and hat-drivers use at run time), ``"c"`` or ``"py"``
(``PySerializer``). Facts about hat-sbs 0.7.6 decoding that matter for
differential tests:
  * Integer range: the C serializer (the default!) ENCODES only the i64
    range [-2^63, 2^63-1] (outside it: "OverflowError: int too big to
    convert") and DECODES longer encodings by silently wrapping to the low
    64 bits (two's complement), e.g. 0100000000000000000080 (2^70) decodes
    as 0. The Python serializer is arbitrary precision both ways. Use
    "serializer": "py" for big-integer round-trips;
  * trailing bytes after a complete value are ignored (both serializers);
  * a String/Bytes length running past the end of the input is an error in
    the C serializer, but the Python serializer silently truncates;
  * a Boolean byte other than 00 decodes as true (nonzero = true);
  * non-minimal Integer encodings (e.g. ``0080`` for 0) are accepted;
  * a Choice index out of range is an error.

JSON mapping of SBS values (type-directed, lossless, both directions)
--------------------------------------------------------------------

The conversion walks the SBS type, so the same JSON shape is never ambiguous.

  SBS type      JSON form                            hat.sbs Python form
  ------------  -----------------------------------  ----------------------
  None          null                                 None
  Boolean       true / false                         bool
  Integer       JSON integer, any size (no ".", no   int (unbounded)
                exponent; e.g. 1180591620717411303424)
  Float         {"float": "<16 hex digits>"}: the 8  float
                IEEE-754 bytes, big-endian, so NaN
                payloads, +-inf and -0.0 are exact.
                On input a plain JSON number is also
                accepted; output is always the hex form.
  String        JSON string                          str
  Bytes         {"bytes": "<hex>"} (lowercase out)   bytes (decode may give
                                                     memoryview/bytes)
  Array(T)      JSON array of T                      list
  Record{..}    JSON object keyed by field name;     dict[str, Data]
                input must have exactly the schema's
                fields (missing or extra -> error);
                output keys are in schema order
  Choice{..}    {"choice": "<alternative name>",     tuple (name, value)
                 "value": V}; on input "value" may
                be omitted when the alternative's
                type is None (taken as null)
  Optional(T)   hat-sbs 0.7.6 has Optional as a      tuple ('none', None) /
                BUILT-IN parametric type defined as  tuple ('value', v)
                Choice { none: None, value: T }, so
                it IS a Choice in every respect:
                absent  {"choice": "none", "value": null}   (wire 80)
                present {"choice": "value", "value": V}     (wire 81 + V)
                No other form (null / bare value) is accepted.

Type names: ``"module"`` and ``"type"`` are joined as ``M.T``. Only types
without parameters can be named (parametric definitions are instantiated
only where used, as in hat-sbs).

Example session (-> request, <- response)::

  -> {"op":"encode","schema":"module Test\\nT = Integer","module":"Test","type":"T","value":-65}
  <- {"hex": "7fbf"}
  -> {"op":"decode","schema":"module Test\\nT = Optional(Integer)","module":"Test","type":"T","hex":"8185"}
  <- {"value": {"choice": "value", "value": 5}}
  -> {"op":"decode","schema":null,"module":"HatChatter","type":"Msg","hex":"zz"}
  <- {"error": "ValueError: non-hexadecimal number found in fromhex() arg at position 0"}
"""

import importlib.resources
import json
import pathlib
import struct
import sys
import traceback

import hat.sbs
from hat.sbs import common as sbs_common


_SERIALIZERS = {
    'default': hat.sbs.DefaultSerializer,
    'c': hat.sbs.CSerializer,
    'py': hat.sbs.PySerializer,
}

_repo_cache = {}
_installed_repo = None


def installed_repo():
    """HatChatter + HatEventer (+ HatEventAdminer) + HatObserver from the
    installed JSON."""
    global _installed_repo
    if _installed_repo is None:
        repos = []
        for package in ('hat.drivers.chatter', 'hat.event.common', 'hat.monitor'):
            res = importlib.resources.files(package) / 'sbs_repo.json'
            with importlib.resources.as_file(res) as path:
                repos.append(hat.sbs.Repository.from_json(pathlib.Path(path)))
        _installed_repo = hat.sbs.Repository(*repos)
    return _installed_repo


def get_repo(schema):
    if schema is None:
        return installed_repo()
    if isinstance(schema, str):
        key = (schema,)
        texts = [schema]
    elif isinstance(schema, list) and all(isinstance(i, str) for i in schema):
        key = tuple(schema)
        texts = schema
    else:
        raise ValueError('schema must be null, a string or an array of '
                         'strings')
    repo = _repo_cache.get(key)
    if repo is None:
        repo = hat.sbs.Repository(*texts)
        _repo_cache[key] = repo
    return repo


# --------------------------------------------------------------------------
# type-directed JSON <-> hat.sbs conversion

def _refs(repo):
    # Resolved type table of the repository (hat-sbs keeps it in _refs).
    return repo._refs


def _resolve(refs, t):
    seen = 0
    while isinstance(t, sbs_common.Ref):
        if t not in refs:
            raise ValueError(f'unknown type {_ref_name(t)}')
        t = refs[t]
        seen += 1
        if seen > 10000:
            raise ValueError('reference cycle')
    return t


def _ref_name(ref):
    return f'{ref.module}.{ref.name}' if ref.module else ref.name


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def json_to_sbs(refs, t, v, path='$'):
    t = _resolve(refs, t)

    if isinstance(t, sbs_common.NoneType):
        if v is not None:
            raise ValueError(f'{path}: None expects null')
        return None

    if isinstance(t, sbs_common.BooleanType):
        if not isinstance(v, bool):
            raise ValueError(f'{path}: Boolean expects true/false')
        return v

    if isinstance(t, sbs_common.IntegerType):
        if not _is_int(v):
            raise ValueError(f'{path}: Integer expects a JSON integer')
        return v

    if isinstance(t, sbs_common.FloatType):
        if isinstance(v, dict) and set(v) == {'float'}:
            raw = bytes.fromhex(v['float'])
            if len(raw) != 8:
                raise ValueError(f'{path}: Float hex must be 8 bytes')
            return struct.unpack('>d', raw)[0]
        if (_is_int(v) or isinstance(v, float)):
            return float(v)
        raise ValueError(f'{path}: Float expects {{"float": "<16 hex>"}}')

    if isinstance(t, sbs_common.StringType):
        if not isinstance(v, str):
            raise ValueError(f'{path}: String expects a JSON string')
        # reject lone surrogates early (they cannot be UTF-8 encoded)
        v.encode('utf-8')
        return v

    if isinstance(t, sbs_common.BytesType):
        if not (isinstance(v, dict) and set(v) == {'bytes'}
                and isinstance(v['bytes'], str)):
            raise ValueError(f'{path}: Bytes expects {{"bytes": "<hex>"}}')
        return bytes.fromhex(v['bytes'])

    if isinstance(t, sbs_common.ArrayType):
        if not isinstance(v, list):
            raise ValueError(f'{path}: Array expects a JSON array')
        return [json_to_sbs(refs, t.t, item, f'{path}[{i}]')
                for i, item in enumerate(v)]

    if isinstance(t, sbs_common.RecordType):
        if not isinstance(v, dict):
            raise ValueError(f'{path}: Record expects a JSON object')
        names = [name for name, _ in t.entries]
        extra = set(v) - set(names)
        if extra:
            raise ValueError(f'{path}: unknown Record fields {sorted(extra)}')
        missing = [n for n in names if n not in v]
        if missing:
            raise ValueError(f'{path}: missing Record fields {missing}')
        return {name: json_to_sbs(refs, et, v[name], f'{path}.{name}')
                for name, et in t.entries}

    if isinstance(t, sbs_common.ChoiceType):
        if not (isinstance(v, dict) and 'choice' in v
                and set(v) <= {'choice', 'value'}
                and isinstance(v['choice'], str)):
            raise ValueError(f'{path}: Choice expects '
                             f'{{"choice": name, "value": V}}')
        for name, et in t.entries:
            if name == v['choice']:
                break
        else:
            raise ValueError(f'{path}: unknown Choice alternative '
                             f'{v["choice"]!r}')
        return (name, json_to_sbs(refs, et, v.get('value'),
                                  f'{path}<{name}>'))

    raise ValueError(f'{path}: unsupported type {t!r}')


def sbs_to_json(refs, t, v):
    t = _resolve(refs, t)

    if isinstance(t, sbs_common.NoneType):
        return None

    if isinstance(t, sbs_common.BooleanType):
        return bool(v)

    if isinstance(t, sbs_common.IntegerType):
        return int(v)

    if isinstance(t, sbs_common.FloatType):
        return {'float': struct.pack('>d', v).hex()}

    if isinstance(t, sbs_common.StringType):
        return str(v)

    if isinstance(t, sbs_common.BytesType):
        return {'bytes': bytes(v).hex()}

    if isinstance(t, sbs_common.ArrayType):
        return [sbs_to_json(refs, t.t, i) for i in v]

    if isinstance(t, sbs_common.RecordType):
        return {name: sbs_to_json(refs, et, v[name]) for name, et in t.entries}

    if isinstance(t, sbs_common.ChoiceType):
        name, value = v
        for entry_name, et in t.entries:
            if entry_name == name:
                return {'choice': name, 'value': sbs_to_json(refs, et, value)}
        raise ValueError(f'decoded unknown alternative {name!r}')

    raise ValueError(f'unsupported type {t!r}')


# --------------------------------------------------------------------------

def _type_ref(req):
    module = req.get('module')
    name = req.get('type')
    if not isinstance(module, str) or not isinstance(name, str):
        raise ValueError('"module" and "type" must be strings')
    return sbs_common.Ref(module, name)


def handle(req):
    if not isinstance(req, dict):
        raise ValueError('request must be a JSON object')
    op = req.get('op')
    if op == 'ping':
        return {'ok': True}
    if op not in ('encode', 'decode'):
        raise ValueError(f'unknown op {op!r}')

    serializer = _SERIALIZERS.get(req.get('serializer', 'default'))
    if serializer is None:
        raise ValueError('serializer must be "default", "c" or "py"')
    if 'schema' not in req:
        raise ValueError('missing "schema" (string, array or null)')
    repo = get_repo(req['schema'])
    refs = _refs(repo)
    ref = _type_ref(req)
    if ref not in refs:
        raise ValueError(f'unknown type {_ref_name(ref)}')

    if op == 'encode':
        if 'value' not in req:
            raise ValueError('missing "value"')
        value = json_to_sbs(refs, ref, req['value'])
        data = repo.encode(ref, value, serializer=serializer)
        return {'hex': bytes(data).hex()}

    h = req.get('hex')
    if not isinstance(h, str):
        raise ValueError('"hex" must be a string')
    data = bytes.fromhex(h)
    value = repo.decode(ref, data, serializer=serializer)
    return {'value': sbs_to_json(refs, ref, value)}


def _error(exc):
    msg = str(exc)
    return {'error': f'{type(exc).__name__}: {msg}' if msg
            else type(exc).__name__}


def main():
    # Python >= 3.11 limits int<->str conversion to 4300 digits by default;
    # lift it so arbitrarily large Integers round-trip through JSON.
    if hasattr(sys, 'set_int_max_str_digits'):
        sys.set_int_max_str_digits(0)
    debug = '--debug' in sys.argv[1:]
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line, parse_constant=_reject_constant)
            resp = handle(req)
        except Exception as e:  # never crash on a bad request
            if debug:
                traceback.print_exc(file=sys.stderr)
            resp = _error(e)
        try:
            text = json.dumps(resp, allow_nan=False)
        except Exception as e:
            text = json.dumps(_error(e))
        out.write(text + '\n')
        out.flush()


def _reject_constant(name):
    raise ValueError(f'JSON constant {name} is not allowed')


if __name__ == '__main__':
    main()
