"""Cut captures into fuzz seeds; see seed-corpus. Usage: seed-corpus.py CORPUS_DIR PCAP..."""
import hashlib, os, struct, sys

RECORDS_PER_SEED = 40
MAX_STREAM_SEED = 16 * 1024


def records(path):
    d = open(path, 'rb').read()
    if len(d) < 24:
        return None, None, []
    magic = d[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        return None, None, []
    hdr = d[:24]
    link = struct.unpack(e + 'I', d[20:24])[0] & 0x03FFFFFF
    out, o = [], 24
    while o + 16 <= len(d):
        incl = struct.unpack(e + 'I', d[o + 8:o + 12])[0]
        if o + 16 + incl > len(d):
            break
        out.append(d[o:o + 16 + incl])
        o += 16 + incl
    return hdr, (e, link), out


def tcp_of(link, e, rec):
    """(src, dst, sport, dport, seq, flags, payload) or None."""
    f = rec[16:]
    if link == 1:  # Ethernet, VLAN tags
        et, o = struct.unpack('>H', f[12:14])[0], 14
        while et in (0x8100, 0x88a8) and len(f) >= o + 4:
            et, o = struct.unpack('>H', f[o + 2:o + 4])[0], o + 4
    elif link == 113:  # SLL
        et, o = struct.unpack('>H', f[14:16])[0], 16
    elif link == 276:  # SLL2
        et, o = struct.unpack('>H', f[0:2])[0], 20
    elif link in (0, 108):  # NULL / LOOP
        fam = struct.unpack('<I' if link == 0 else '>I', f[:4])[0]
        et, o = (0x0800 if fam == 2 else 0x86dd), 4
    elif link in (101, 12, 14, 228, 229):
        et, o = (0x0800 if f[:1] and f[0] >> 4 == 4 else 0x86dd), 0
    else:
        return None
    try:
        if et == 0x0800:
            ihl = (f[o] & 15) * 4
            tot = struct.unpack('>H', f[o + 2:o + 4])[0]
            if f[o + 9] != 6:
                return None
            src, dst = f[o + 12:o + 16], f[o + 16:o + 20]
            end, o = o + tot, o + ihl
        elif et == 0x86dd:
            plen = struct.unpack('>H', f[o + 4:o + 6])[0]
            if f[o + 6] != 6:
                return None
            src, dst = f[o + 8:o + 24], f[o + 24:o + 40]
            end, o = o + 40 + plen, o + 40
        else:
            return None
        sport, dport, seq = struct.unpack('>HHI', f[o:o + 8])
        doff = (f[o + 12] >> 4) * 4
        flags = f[o + 13]
        return src, dst, sport, dport, seq, flags, f[o + doff:min(end, len(f))]
    except (IndexError, struct.error):
        return None


def put(dirname, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(dirname, name), 'wb') as fh:
        fh.write(data)


def top_level_elements(s):
    """Crude split of an XML stream into top-level pieces (seeds only)."""
    out, depth, start, i = [], 0, None, 0
    while True:
        i = s.find(b'<', i)
        if i < 0:
            return out
        j = s.find(b'>', i)
        if j < 0:
            return out
        tag = s[i:j + 1]
        if tag.startswith(b'<?') or tag.startswith(b'<!'):
            pass
        elif tag.startswith(b'</'):
            depth -= 1
            if depth == 0 and start is not None:
                out.append(s[start:j + 1])
                start = None
            depth = max(depth, 0)
        elif b'stream:stream' in tag[:20]:
            out.append(tag)
        elif tag.endswith(b'/>'):
            if depth == 0:
                out.append(tag)
        else:
            if depth == 0:
                start = i
            depth += 1
        i = j + 1


def main():
    corpus, paths = sys.argv[1], sys.argv[2:]
    d = {t: os.path.join(corpus, t) for t in
         ('xml_framer', 'tcp_reassembly', 'dissector_pcap', 'element_parse')}
    for path in paths:
        hdr, info, recs = records(path)
        if hdr is None:
            continue
        e, link = info
        for k in range(0, len(recs), RECORDS_PER_SEED):
            put(d['dissector_pcap'], hdr + b''.join(recs[k:k + RECORDS_PER_SEED]))
        streams = {}
        for r in recs:
            t = tcp_of(link, e, r)
            if t:
                streams.setdefault(t[:4], []).append(t[4:])
        for segs in streams.values():
            data = b''.join(p for _, _, p in segs)
            if not data:
                continue
            # xml_framer: 4-byte header (default limits, no cuts) + stream.
            put(d['xml_framer'], b'\0\0\0\0' + data[:MAX_STREAM_SEED])
            # tcp_reassembly: default limits, ISN of the first segment,
            # each segment as (flags, u32 absolute seq, len, payload).
            isn = segs[0][0]
            tr = bytearray(b'\0\0\0\0' + struct.pack('<I', isn))
            for seq, flags, p in segs[:64]:
                for o in range(0, max(len(p), 1), 255):
                    chunk = p[o:o + 255]
                    fl = 8 | (1 if flags & 2 and o == 0 else 0) | (2 if flags & 1 else 0)
                    tr += bytes([fl]) + struct.pack('<I', (seq + o) & 0xffffffff)
                    tr += bytes([len(chunk)]) + chunk
            put(d['tcp_reassembly'], bytes(tr))
            # element_parse: ctl 0x04 (stream scope) + each top-level element.
            for el in top_level_elements(data)[:200]:
                if len(el) <= 4096:
                    put(d['element_parse'], (b'\x06' if b'stream:stream' in el[:20] else b'\x04') + el)


main()
