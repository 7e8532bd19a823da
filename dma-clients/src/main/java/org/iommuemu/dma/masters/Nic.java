package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DmaFault;

/**
 * A simulated network interface with one RX and one TX ring of buffer descriptors in iova space, driven by
 * DMA on its session's stream id. Packets come in through {@link #receive} (the wire delivers a packet) and go
 * out through {@link #transmit} (software rang the TX doorbell; the packets are what the wire would carry).
 *
 * <h2>Device ABI</h2>
 *
 * <p>Each ring is {@code entries} descriptors of {@value NicDescriptor#SIZE} bytes at consecutive iovas from its
 * base (16-byte aligned); descriptor {@code i} is at {@code base + 16 * i}. See {@link NicDescriptor} for the
 * words. Each ring has a HEAD (next descriptor the NIC uses) and a TAIL (one past the last descriptor software
 * handed over), both in {@code [0, entries)} and starting at 0; HEAD == TAIL means the NIC owns no descriptor,
 * so software hands over at most {@code entries - 1}.
 *
 * <p><b>RX.</b> Software posts empty buffers (LEN = capacity, CODE = 0) and moves the RX TAIL with
 * {@link #rxDoorbell}. For each packet the NIC:
 * <ol>
 * <li>drops it (counter {@code rxDropsNoDescriptor}) if RX HEAD == RX TAIL;</li>
 * <li>reads the descriptor at RX HEAD (one 16-byte DMA read; a fault drops the packet and leaves HEAD there);</li>
 * <li>if the packet is longer than LEN, writes nothing to the buffer and completes with BUFFER_TOO_SMALL;
 *     otherwise DMA-writes the packet at BUF (chunks of at most {@code maxTransfer}) and completes with OK, or
 *     WRITE_FAULT if a write faulted (the packet is dropped);</li>
 * <li>writes CTL back (LEN = the packet's length) and advances RX HEAD. If the CTL write faults HEAD stays.</li>
 * </ol>
 *
 * <p><b>TX.</b> Software fills buffers, posts descriptors (LEN = packet length, CODE = 0) and calls
 * {@link #transmit(int)} with the new TX TAIL. For each descriptor from TX HEAD to TX TAIL the NIC reads it,
 * DMA-reads LEN bytes from BUF, writes CTL back (OK, or READ_FAULT: the packet is not sent) and advances
 * TX HEAD, then goes on with the next descriptor. A descriptor read or CTL write that faults stops the batch
 * with TX HEAD on that descriptor; the next {@code transmit} retries it.
 *
 * <p>Faults never throw: they are codes in the descriptors and counters; {@link #lastFault()} keeps the most
 * recent one. RX and TX each process one call at a time and may run concurrently with each other.
 */
public final class Nic {
    /** What happened to one received packet. */
    public enum RxOutcome {
        /** Written to the buffer; descriptor completed with OK. */
        DELIVERED,
        /** No RX descriptor was available; nothing was accessed. */
        DROPPED_NO_DESCRIPTOR,
        /** The descriptor's buffer was too small; descriptor completed with BUFFER_TOO_SMALL. */
        DROPPED_TOO_SMALL,
        /** A DMA faulted (descriptor, buffer or write-back); see {@link #lastFault()}. */
        DROPPED_FAULT
    }

    /**
     * Totals since construction.
     *
     * @param rxPackets packets delivered into RX buffers
     * @param rxBytes their bytes
     * @param rxDropsNoDescriptor packets dropped because software had posted no RX buffer
     * @param rxDropsTooSmall packets dropped because the RX buffer was too small
     * @param rxFaults DMA faults on the RX side
     * @param txPackets packets transmitted
     * @param txBytes their bytes
     * @param txFaults DMA faults on the TX side
     */
    public record Counters(long rxPackets, long rxBytes, long rxDropsNoDescriptor, long rxDropsTooSmall,
            long rxFaults, long txPackets, long txBytes, long txFaults) {}

    private final DmaSession session;
    private final Ring rx;
    private final Ring tx;
    private final int mtu;
    private final int maxTransfer;
    private final DmaOptions options;
    private volatile DmaFault lastFault;

    private static final class Ring {
        final long base;
        final int entries;
        final byte[] descriptor = new byte[NicDescriptor.SIZE];
        final byte[] ctl = new byte[8];
        int head;
        int tail;
        long packets;
        long bytes;
        long faults;
        long dropsNoDescriptor;
        long dropsTooSmall;

        Ring(long base, int entries) {
            this.base = base;
            this.entries = entries;
        }

        long at(int index) {
            return base + (long) index * NicDescriptor.SIZE;
        }

        void advance() {
            head = head + 1 == entries ? 0 : head + 1;
        }
    }

    /** A NIC with a 9000-byte MTU, {@value Args#DEFAULT_MAX_TRANSFER}-byte DMA chunks and default options. */
    public Nic(DmaSession session, long rxRingBase, int rxEntries, long txRingBase, int txEntries) {
        this(session, rxRingBase, rxEntries, txRingBase, txEntries, 9000, Args.DEFAULT_MAX_TRANSFER, DmaOptions.DEFAULT);
    }

    /**
     * @param session the attached master the NIC issues its DMA as
     * @param rxRingBase iova of RX descriptor 0, 16-byte aligned
     * @param rxEntries RX descriptors, 2 .. 2^20
     * @param txRingBase iova of TX descriptor 0, 16-byte aligned
     * @param txEntries TX descriptors, 2 .. 2^20
     * @param mtu the largest packet the wire carries, 1 .. 16 MiB: {@link #receive} refuses longer packets and a
     *     TX descriptor with a longer LEN completes with BAD_DESCRIPTOR
     * @param maxTransfer the largest single DMA, 1 .. 64 MiB
     * @param options substream id and attributes for every access
     */
    public Nic(DmaSession session, long rxRingBase, int rxEntries, long txRingBase, int txEntries, int mtu,
            int maxTransfer, DmaOptions options) {
        this.session = Args.notNull("session", session);
        Args.ring("rxRingBase", rxRingBase, "rxEntries", rxEntries, NicDescriptor.SIZE);
        Args.ring("txRingBase", txRingBase, "txEntries", txEntries, NicDescriptor.SIZE);
        this.rx = new Ring(rxRingBase, rxEntries);
        this.tx = new Ring(txRingBase, txEntries);
        this.mtu = Args.range("mtu", mtu, 1, 16 << 20);
        this.maxTransfer = Args.range("maxTransfer", maxTransfer, 1, 64 << 20);
        this.options = Args.notNull("options", options);
    }

    /** The iova of RX descriptor {@code index}. */
    public long rxDescriptorAddress(int index) {
        Args.range("index", index, 0, rx.entries - 1);
        return rx.at(index);
    }

    /** The iova of TX descriptor {@code index}. */
    public long txDescriptorAddress(int index) {
        Args.range("index", index, 0, tx.entries - 1);
        return tx.at(index);
    }

    public int mtu() {
        return mtu;
    }

    /** Hands RX descriptors up to (not including) {@code newTail} to the NIC. */
    public void rxDoorbell(int newTail) {
        Args.range("newTail", newTail, 0, rx.entries - 1);
        synchronized (rx) {
            rx.tail = newTail;
        }
    }

    public int rxHead() {
        synchronized (rx) {
            return rx.head;
        }
    }

    public int txHead() {
        synchronized (tx) {
            return tx.head;
        }
    }

    /** The most recent DMA fault the NIC met, or null. */
    public DmaFault lastFault() {
        return lastFault;
    }

    public Counters counters() {
        synchronized (rx) {
            synchronized (tx) {
                return new Counters(rx.packets, rx.bytes, rx.dropsNoDescriptor, rx.dropsTooSmall, rx.faults,
                        tx.packets, tx.bytes, tx.faults);
            }
        }
    }

    /**
     * A packet arrives from the wire.
     *
     * @param packet 1 .. mtu bytes; not retained
     * @throws IllegalArgumentException for an empty packet or one longer than the MTU
     */
    public RxOutcome receive(byte[] packet) {
        Args.notNull("packet", packet);
        return receive(UnsafeByteOperations.unsafeWrap(packet));
    }

    /** A packet arrives from the wire; see {@link #receive(byte[])}. */
    public RxOutcome receive(ByteString packet) {
        Args.notNull("packet", packet);
        Args.range("packet length", packet.size(), 1, mtu);
        synchronized (rx) {
            if (rx.head == rx.tail) {
                rx.dropsNoDescriptor++;
                return RxOutcome.DROPPED_NO_DESCRIPTOR;
            }
            long at = rx.at(rx.head);
            DmaResult d = session.read(at, NicDescriptor.SIZE, options);
            if (d.faulted()) {
                return fault(rx, d.fault());
            }
            d.data().copyTo(rx.descriptor, 0);
            long buf = Le.get64(rx.descriptor, NicDescriptor.BUF);
            long capacity = Le.get64(rx.descriptor, NicDescriptor.CTL) & 0xFFFF_FFFFL;
            int len = packet.size();
            CompletionCode code = CompletionCode.OK;
            DmaFault fault = null;
            if (len > capacity) {
                code = CompletionCode.BUFFER_TOO_SMALL;
            } else {
                for (int off = 0; off < len; off += maxTransfer) {
                    int chunk = Math.min(maxTransfer, len - off);
                    ByteString part = chunk == len ? packet : packet.substring(off, off + chunk);
                    DmaResult w = session.write(buf + off, part, options);
                    if (w.faulted()) {
                        code = CompletionCode.WRITE_FAULT;
                        fault = w.fault();
                        break;
                    }
                }
            }
            Le.put64(rx.ctl, 0, NicDescriptor.ctl(len, code, fault == null ? null : fault.getKind()));
            DmaResult s = session.write(at + NicDescriptor.CTL, UnsafeByteOperations.unsafeWrap(rx.ctl), options);
            if (fault != null) {
                rx.faults++;
                lastFault = fault;
            }
            if (s.faulted()) {
                return fault(rx, s.fault());
            }
            rx.advance();
            switch (code) {
                case OK -> {
                    rx.packets++;
                    rx.bytes += len;
                    return RxOutcome.DELIVERED;
                }
                case BUFFER_TOO_SMALL -> {
                    rx.dropsTooSmall++;
                    return RxOutcome.DROPPED_TOO_SMALL;
                }
                default -> {
                    return RxOutcome.DROPPED_FAULT;
                }
            }
        }
    }

    private RxOutcome fault(Ring ring, DmaFault f) {
        ring.faults++;
        lastFault = f;
        return RxOutcome.DROPPED_FAULT;
    }

    /**
     * Sets TX TAIL and sends the packets of the descriptors from TX HEAD up to it.
     *
     * @param newTail 0 .. txEntries - 1
     * @return the packets sent, in ring order (packets whose buffer read faulted are not among them)
     */
    public List<ByteString> transmit(int newTail) {
        Args.range("newTail", newTail, 0, tx.entries - 1);
        List<ByteString> sent = new ArrayList<>();
        synchronized (tx) {
            tx.tail = newTail;
            while (tx.head != tx.tail) {
                long at = tx.at(tx.head);
                DmaResult d = session.read(at, NicDescriptor.SIZE, options);
                if (d.faulted()) {
                    fault(tx, d.fault());
                    break;
                }
                d.data().copyTo(tx.descriptor, 0);
                long buf = Le.get64(tx.descriptor, NicDescriptor.BUF);
                long ctl = Le.get64(tx.descriptor, NicDescriptor.CTL);
                long len = ctl & 0xFFFF_FFFFL;
                CompletionCode code = CompletionCode.OK;
                DmaFault fault = null;
                ByteString packet = null;
                if (len == 0 || len > mtu) {
                    code = CompletionCode.BAD_DESCRIPTOR;
                } else if (len <= maxTransfer) {
                    DmaResult r = session.read(buf, (int) len, options);
                    if (r.faulted()) {
                        code = CompletionCode.READ_FAULT;
                        fault = r.fault();
                    } else {
                        packet = r.data();
                    }
                } else {
                    ByteString.Output out = ByteString.newOutput((int) len);
                    for (long off = 0; off < len; off += maxTransfer) {
                        int chunk = (int) Math.min(maxTransfer, len - off);
                        DmaResult r = session.read(buf + off, chunk, options);
                        if (r.faulted()) {
                            code = CompletionCode.READ_FAULT;
                            fault = r.fault();
                            break;
                        }
                        try {
                            r.data().writeTo(out);
                        } catch (java.io.IOException e) {
                            throw new IllegalStateException(e); // ByteString.Output does not throw
                        }
                    }
                    if (fault == null) {
                        packet = out.toByteString();
                    }
                }
                if (fault != null) {
                    tx.faults++;
                    lastFault = fault;
                }
                Le.put64(tx.ctl, 0, NicDescriptor.ctl(len, code, fault == null ? null : fault.getKind()));
                DmaResult s = session.write(at + NicDescriptor.CTL, UnsafeByteOperations.unsafeWrap(tx.ctl),
                        options);
                if (s.faulted()) {
                    fault(tx, s.fault());
                    break;
                }
                tx.advance();
                if (packet != null) {
                    tx.packets++;
                    tx.bytes += len;
                    sent.add(packet);
                }
            }
        }
        return sent;
    }

    @Override
    public String toString() {
        return "Nic[" + session.name() + ", rx 0x" + Long.toHexString(rx.base) + " x " + rx.entries + ", tx 0x"
                + Long.toHexString(tx.base) + " x " + tx.entries + "]";
    }
}
