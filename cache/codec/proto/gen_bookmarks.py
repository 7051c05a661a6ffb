#!/usr/bin/env python3
"""Generate codec_bookmark_tables.h: how an empty object of each type looks.

Usage: gen_bookmarks.py API_GIT_DIR > ../codec_bookmark_tables.h && clang-format -i ../codec_bookmark_tables.h

A BOOKMARK event carries an empty object of the watched type with only
metadata.resourceVersion set, serialised like any object: JSON writes every
member that is not omitempty/omitzero (strings "", structs recursively, ...),
gogo-protobuf writes every non-pointer scalar and embedded message. We read
the Go structs of k8s.io/api (types.go: json and protobuf tags) and emit, per
type, the bytes that follow "metadata" in each encoding.
"""
import re
import subprocess
import sys

GROUPS = {'core': 'core/v1', 'discovery': 'discovery/v1', 'coordination': 'coordination/v1',
          'node': 'node/v1', 'storage': 'storage/v1'}
ROOTS = [  # (codec kind id, group, Go type)
    ('POD', 'core', 'Pod'), ('NODE', 'core', 'Node'), ('CONFIGMAP', 'core', 'ConfigMap'),
    ('SECRET', 'core', 'Secret'), ('SERVICE', 'core', 'Service'),
    ('NAMESPACE', 'core', 'Namespace'), ('EVENT', 'core', 'Event'),
    ('ENDPOINTS', 'core', 'Endpoints'), ('SERVICEACCOUNT', 'core', 'ServiceAccount'),
    ('ENDPOINTSLICE', 'discovery', 'EndpointSlice'), ('LEASE', 'coordination', 'Lease'),
    ('RUNTIMECLASS', 'node', 'RuntimeClass'), ('CSIDRIVER', 'storage', 'CSIDriver'),
]
# Types from k8s.io/apimachinery with their own marshalling: (zero JSON, zero protobuf body)
SPECIAL = {
    'metav1.Time': ('null', b''),            # Time.MarshalToSizedBuffer writes nothing when zero
    'metav1.MicroTime': ('null', b''),
    'metav1.Duration': ('"0s"', b'\x08\x00'),
    'resource.Quantity': ('"0"', b'\x0a\x01\x30'),
    'intstr.IntOrString': ('0', b'\x08\x00\x10\x00\x1a\x00'),
}
SCALARS = {'string', 'bool', 'int', 'int32', 'int64', 'uint32', 'uint64', 'float64',
           'types.UID', 'byte'}
FIELD = re.compile(r'^\t(?:(\w+)\s+)?([\w.*\[\]]+(?:\[[\w.]+\][\w.*\[\]]+)?)\s+`(.*)`\s*$')


def load(api, group):
    text = subprocess.check_output(['git', '-C', api, 'show', 'HEAD:%s/types.go' % GROUPS[group]],
                                   text=True)
    structs, named, cur = {}, {}, None
    for line in text.splitlines():
        m = re.match(r'^type (\w+) struct {', line)
        if m:
            cur = structs.setdefault(m.group(1), [])
            continue
        if cur is not None and line == '}':
            cur = None
            continue
        if cur is not None:
            f = FIELD.match(line)
            if f:
                cur.append((f.group(1), f.group(2), f.group(3)))
            continue
        m = re.match(r'^type (\w+) ([\w.\[\]*]+)\s*$', line)
        if m:
            named[m.group(1)] = m.group(2)
    return structs, named


def tag(tags, key):
    m = re.search(r'%s:"([^"]*)"' % key, tags)
    return m.group(1) if m else None


def varint(n):
    out = b''
    while n >= 0x80:
        out += bytes([(n & 0x7f) | 0x80])
        n >>= 7
    return out + bytes([n])


class Types:
    def __init__(self, api):
        self.pkgs = {g: load(api, g) for g in GROUPS}

    def resolve(self, group, t):
        """-> ('scalar'|'ptr'|'slice'|'map'|'special'|'struct', detail)"""
        if t.startswith('*'):
            return 'ptr', None
        if t.startswith('[]'):
            return 'slice', None
        if t.startswith('map['):
            return 'map', None
        if t in SPECIAL:
            return 'special', t
        if t in SCALARS:
            return 'scalar', t
        if '.' in t:
            pkg, name = t.split('.', 1)
            if pkg == 'metav1' and name in ('ObjectMeta', 'TypeMeta', 'ListMeta'):
                return 'meta', name
            for g in GROUPS:  # v1.Foo from another k8s.io/api group (core types)
                if pkg == 'v1' and name in self.pkgs['core'][0]:
                    return 'struct', ('core', name)
            raise SystemExit('unhandled type %s' % t)
        structs, named = self.pkgs[group]
        if t in structs:
            return 'struct', (group, t)
        if t in named:
            return self.resolve(group, named[t])
        raise SystemExit('unknown type %s in %s' % (t, group))

    def fields(self, group, name):
        for fname, ftype, tags in self.pkgs[group][0][name]:
            yield fname, ftype, tags

    def json_zero(self, group, name):
        members = []
        for fname, ftype, tags in self.fields(group, name):
            js = tag(tags, 'json') or ''
            parts = js.split(',')
            kind, detail = self.resolve(group, ftype)
            if 'inline' in parts[1:] or (fname is None and parts[0] == ''):
                if kind == 'struct':
                    members += self.json_zero(*detail)
                continue
            if parts[0] == '-':
                continue
            jname = parts[0] or fname
            if 'omitzero' in parts[1:]:
                continue
            omitempty = 'omitempty' in parts[1:]
            if kind in ('ptr', 'slice', 'map'):
                if not omitempty:
                    members.append((jname, 'null'))
            elif kind == 'scalar':
                if not omitempty:
                    zero = {'string': '""', 'types.UID': '""', 'bool': 'false'}.get(detail, '0')
                    members.append((jname, zero))
            elif kind == 'special':
                members.append((jname, SPECIAL[detail][0]))
            elif kind == 'struct':
                inner = self.json_zero(*detail)
                members.append((jname, '{' + ','.join('"%s":%s' % m for m in inner) + '}'))
            elif kind == 'meta':
                members.append((jname, None))  # filled in at run time
        return members

    def pb_zero(self, group, name, skip_meta=False):
        out = []
        for fname, ftype, tags in self.fields(group, name):
            pb = tag(tags, 'protobuf')
            if not pb:
                continue
            wire, num = pb.split(',')[0], int(pb.split(',')[1])
            kind, detail = self.resolve(group, ftype)
            key = varint((num << 3) | (0 if wire == 'varint' else 2))
            if kind == 'scalar':
                out.append((num, key + b'\x00'))
            elif kind == 'special':
                body = SPECIAL[detail][1]
                out.append((num, key + varint(len(body)) + body))
            elif kind == 'struct':
                body = self.pb_zero(*detail)
                out.append((num, key + varint(len(body)) + body))
            elif kind == 'meta' and not skip_meta:
                raise SystemExit('metadata below the top level in %s' % name)
        return b''.join(b for _, b in sorted(out, key=lambda x: x[0]))


def c_bytes(b):
    return '"' + ''.join('\\x%02x' % c for c in b) + '"'


def c_str(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def main():
    t = Types(sys.argv[1])
    commit = subprocess.check_output(['git', '-C', sys.argv[1], 'rev-parse', '--short=12', 'HEAD'],
                                     text=True).strip()
    print('/* Generated by proto/gen_bookmarks.py from k8s.io/api %s: do not edit. */' % commit)
    print('/* Per type: the JSON members after "metadata", and the protobuf fields after')
    print(' * ObjectMeta (field 1), of an empty object of that type. */')
    print('static const struct bookmark_shape bookmark_shapes[CODEC_KIND_COUNT] = {')
    for kid, group, name in ROOTS:
        members = t.json_zero(group, name)
        names = [m[0] for m in members]
        after = members[names.index('metadata') + 1:]
        if any(v is None for _, v in after) or names[0] != 'metadata':
            raise SystemExit('unexpected layout of %s: %s' % (name, names))
        js = ''.join(',"%s":%s' % m for m in after)
        pb = t.pb_zero(group, name, skip_meta=True)
        print('    [CODEC_KIND_%s] = {%s, sizeof(%s) - 1, %s, sizeof(%s) - 1},' %
              (kid, c_str(js), c_str(js), c_bytes(pb), c_bytes(pb)))
    print('};')


if __name__ == '__main__':
    main()
