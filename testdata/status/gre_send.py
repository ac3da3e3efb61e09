import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
key = 0x1234abcd
sent = 0
for seq in range(10000):
    if seq % 1000 == 999:   # drop one in a thousand on purpose
        continue
    hdr = struct.pack("!HHII", 0x3000, 0x6558, key, seq)
    s.sendto(hdr + b"\xaa" * 100, ("127.0.0.1", 0)); sent += 1
for i in range(50):  # netis profile: K only, key = keybit | dir<<28
    s.sendto(struct.pack("!HHI", 0x2000, 0x6558, 7 | (2 << 28)) + b"\xbb" * 60, ("127.0.0.1", 0))
print("sent", sent, "standard +50 netis")
