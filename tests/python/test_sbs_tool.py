#!/usr/bin/env python3
"""Self-checks for sbs_tool.py, run through its real line protocol.

    python tests/python/test_sbs_tool.py

Starts sbs_tool.py as a subprocess, sends requests, and
checks the answers with plain asserts. Prints "N passed, M failed" and exits
non-zero if anything failed.
"""

import json
import pathlib
import subprocess
import sys

TOOL = pathlib.Path(__file__).with_name('sbs_tool.py')

INT = 'module Test\nT = Integer'
OPT = 'module Test\nT = Optional(Integer)'
FLT = 'module Test\nT = Float'
REC = '''module Test
R = Record {
    a: Bytes
    b: Choice {
        x: None
        y: Array(Boolean)
    }
    s: String
}
'''


def tool_python():
    """This interpreter if it has hat.sbs, else the test venv's python."""
    try:
        import hat.sbs  # NOQA
        return sys.executable
    except ImportError:
        script = TOOL.parents[2] / 'scripts' / 'python-venv.sh'
        out = subprocess.run(['bash', str(script)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return out.strip().splitlines()[-1]


class Tool:
    def __init__(self):
        self.p = subprocess.Popen([tool_python(), str(TOOL)],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def raw(self, line):
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def call(self, **req):
        return self.raw(json.dumps(req))

    def enc(self, schema, module, t, value, **kw):
        return self.call(op='encode', schema=schema, module=module, type=t,
                         value=value, **kw)

    def dec(self, schema, module, t, h, **kw):
        return self.call(op='decode', schema=schema, module=module, type=t,
                         hex=h, **kw)

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=10)
        assert rc == 0, f'tool exited with {rc}'


def tests(tool):
    def integers():
        for v, h in [(0, '80'), (1, '81'), (-1, 'ff'), (63, 'bf'),
                     (64, '00c0'), (128, '0180'), (-65, '7fbf'),
                     (-64, 'c0'), (2**63 - 1, '007f7f7f7f7f7f7f7fff'),
                     (-2**63, '7f000000000000000080')]:
            assert tool.enc(INT, 'Test', 'T', v) == {'hex': h}, v
            assert tool.dec(INT, 'Test', 'T', h) == {'value': v}, h
    yield integers

    def big_integers_py():
        for v, h in [(2**70, '0100000000000000000080'),
                     (-2**70, '7f00000000000000000080'),
                     (10**40, None), (-(10**40), None)]:
            r = tool.enc(INT, 'Test', 'T', v, serializer='py')
            assert 'hex' in r, r
            if h is not None:
                assert r['hex'] == h, r
            back = tool.dec(INT, 'Test', 'T', r['hex'], serializer='py')
            assert back == {'value': v}, back
            # through the raw JSON text too (no float conversion anywhere)
            line = tool.raw('{"op":"decode","schema":%s,"module":"Test",'
                            '"type":"T","hex":"%s","serializer":"py"}'
                            % (json.dumps(INT), r['hex']))
            assert line['value'] == v and isinstance(line['value'], int)
    yield big_integers_py

    def big_integers_c_limits():
        # documented behaviour of the default (C) serializer
        r = tool.enc(INT, 'Test', 'T', 2**63)
        assert 'error' in r and 'too big' in r['error'], r
        r = tool.dec(INT, 'Test', 'T', '0100000000000000000080')
        assert r == {'value': 0}, r
    yield big_integers_c_limits

    def optional():
        assert tool.enc(OPT, 'Test', 'T',
                        {'choice': 'value', 'value': 5}) == {'hex': '8185'}
        assert tool.enc(OPT, 'Test', 'T',
                        {'choice': 'none', 'value': None}) == {'hex': '80'}
        assert tool.enc(OPT, 'Test', 'T', {'choice': 'none'}) == {'hex': '80'}
        assert tool.dec(OPT, 'Test', 'T', '8185') == {
            'value': {'choice': 'value', 'value': 5}}
        assert tool.dec(OPT, 'Test', 'T', '80') == {
            'value': {'choice': 'none', 'value': None}}
        assert 'error' in tool.enc(OPT, 'Test', 'T', 5)
        assert 'error' in tool.enc(OPT, 'Test', 'T', None)
    yield optional

    def floats():
        for h in ['0000000000000000', '8000000000000000',
                  '7ff0000000000000', 'fff0000000000000',
                  '7ff8000000000001', '3ff0000000000000']:
            assert tool.enc(FLT, 'Test', 'T', {'float': h}) == {'hex': h}, h
            assert tool.dec(FLT, 'Test', 'T', h) == {'value': {'float': h}}
        assert tool.enc(FLT, 'Test', 'T', 1.0) == {'hex': '3ff0000000000000'}
    yield floats

    def record_choice_bytes():
        v = {'a': {'bytes': '00ff'}, 'b': {'choice': 'y',
                                           'value': [True, False]},
             's': 'h\u00e9'}
        r = tool.enc(REC, 'Test', 'R', v)
        assert r == {'hex': '8200ff8182010083 68c3a9'.replace(' ', '')}, r
        assert tool.dec(REC, 'Test', 'R', r['hex']) == {'value': v}
        v2 = {'a': {'bytes': ''}, 'b': {'choice': 'x', 'value': None},
              's': ''}
        r = tool.enc(REC, 'Test', 'R', v2)
        assert r == {'hex': '808080'}, r
        assert tool.dec(REC, 'Test', 'R', '808080') == {'value': v2}
        # strictness of the JSON layer
        assert 'error' in tool.enc(REC, 'Test', 'R', {**v, 'zz': 1})
        assert 'error' in tool.enc(REC, 'Test', 'R', {'a': v['a']})
        assert 'error' in tool.enc(REC, 'Test', 'R',
                                   {**v, 'b': {'choice': 'q'}})
    yield record_choice_bytes

    def chatter_msg():
        msg = {'id': 7, 'first': 3, 'owner': True, 'token': False,
               'last': True,
               'data': {'type': 'HatEventer.MsgStatusNotify',
                        'data': {'bytes': '0102ff'}}}
        r = tool.enc(None, 'HatChatter', 'Msg', msg)
        assert r == {'hex': '8783010001' + '9a' +
                     b'HatEventer.MsgStatusNotify'.hex() + '830102ff'}, r
        assert tool.dec(None, 'HatChatter', 'Msg', r['hex']) == {'value': msg}
        assert tool.enc(None, 'HatChatter', 'Ping', None) == {'hex': ''}
    yield chatter_msg

    def eventer_types():
        v = {'clientName': 'c', 'clientToken': {'choice': 'none',
                                                'value': None},
             'subscriptions': [['a', '*']],
             'serverId': {'choice': 'value', 'value': 1},
             'persisted': True}
        r = tool.enc(None, 'HatEventer', 'MsgInitReq', v)
        assert 'hex' in r, r
        assert tool.dec(None, 'HatEventer', 'MsgInitReq',
                        r['hex']) == {'value': v}
    yield eventer_types

    def errors_do_not_crash():
        assert 'error' in tool.raw('not json')
        assert 'error' in tool.raw('[1,2]')
        assert 'error' in tool.call(op='nope')
        assert 'error' in tool.call(op='encode', schema='module X\nT = ',
                                    module='X', type='T', value=1)
        assert 'error' in tool.dec(None, 'HatChatter', 'Msg', 'zz')
        assert 'error' in tool.dec(None, 'HatChatter', 'Msg', '')
        assert 'error' in tool.dec(None, 'HatChatter', 'Nope', '80')
        assert 'error' in tool.enc(INT, 'Test', 'T', True)
        assert 'error' in tool.enc(INT, 'Test', 'T', 1.0)
        assert 'error' in tool.raw('{"op":"encode","schema":null,'
                                   '"module":"Test","type":"T","value":NaN}')
        assert tool.call(op='ping') == {'ok': True}
    yield errors_do_not_crash


def main():
    tool = Tool()
    passed = failed = 0
    for test in tests(tool):
        try:
            test()
            passed += 1
            print(f'ok   {test.__name__}')
        except Exception as e:
            failed += 1
            print(f'FAIL {test.__name__}: {type(e).__name__}: {e}')
    tool.close()
    print(f'{passed} passed, {failed} failed')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
