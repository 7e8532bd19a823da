package org.iommuemu.core.smmuv3;

import org.iommuemu.core.bits.Bits;

/**
 * An event-queue record: 32 bytes, four little-endian 64-bit words ({@code spec/SMMUV3.md} §8; Arm IHI0070
 * "Event records"; positions as Linux's {@code EVTQ_*}).
 *
 * <p>Words 0–2 have one layout for every type: EventType dw0[7:0], SSV dw0[11], SubstreamID dw0[31:12],
 * StreamID dw0[63:32]; STAG dw1[15:0], Stall dw1[31], PnU dw1[33], InD dw1[34], RnW dw1[35] (1 = read), S2
 * dw1[39], CLASS dw1[41:40], TTRnW dw1[44]; InputAddr dw2. Word 3 depends on the type ({@link EventType}):
 * IPA dw3[51:12] and NSIPA dw3[0] for the translation-class faults, FetchAddr dw3[51:3] for the fetch and
 * walk aborts (F_CD_FETCH included, §9.2), nothing otherwise. The canonical constructor rejects a value
 * that does not fit its field and a nonzero word-3 field the type does not have, so every record encodes
 * without loss and {@code decode(encode(x)).equals(x)}.
 *
 * <p>The device builds records with the factories ({@link #translationFault}, {@link #badSte},
 * {@link #walkExternalAbort}…) or {@link #builder}; a driver decodes them with {@link #decode}.
 *
 * @param type        EventType
 * @param ssv         SSV: {@code substreamId} is valid
 * @param substreamId SubstreamID (20 bits)
 * @param streamId    StreamID (32 bits, unsigned)
 * @param stag        STAG: stall tag of a stalled transaction (16 bits)
 * @param stall       Stall: the transaction is stalled awaiting RESUME
 * @param pnu         PnU: privileged (1) or unprivileged access
 * @param ind         InD: instruction (1) or data access
 * @param rnw         RnW: read (1) or write
 * @param s2          S2: the fault happened in stage 2
 * @param clazz       CLASS: what was being accessed ({@link #CLASS_CD}, {@link #CLASS_TT}, {@link #CLASS_IN})
 * @param ttrnw       TTRnW: for CLASS = TT, the table access was a read (1) or an update (0)
 * @param inputAddr   InputAddr: the transaction's input address
 * @param ipa         IPA, in place (4 KB aligned, below 2^52): the stage-2 input of a stage-2 fault
 * @param fetchAddr   FetchAddr, in place (8-byte aligned, below 2^52): the address whose fetch aborted
 * @param nsipa       NSIPA: the IPA is non-secure (unverified)
 */
public record EventRecord(
        int type,
        boolean ssv,
        int substreamId,
        int streamId,
        int stag,
        boolean stall,
        boolean pnu,
        boolean ind,
        boolean rnw,
        boolean s2,
        int clazz,
        boolean ttrnw,
        long inputAddr,
        long ipa,
        long fetchAddr,
        boolean nsipa) {

    /** Size of a record in bytes. */
    public static final int SIZE = 32;
    /** Number of 64-bit words in a record. */
    public static final int DWORDS = 4;

    /** CLASS: the fault happened fetching a CD. */
    public static final int CLASS_CD = 0;
    /** CLASS: the fault happened on a translation-table access. */
    public static final int CLASS_TT = 1;
    /** CLASS: the fault is about the input address itself. */
    public static final int CLASS_IN = 2;

    public static final BitField TYPE = BitField.of("EventType", 0, 7, 0);
    public static final BitField SSV = BitField.flag("SSV", 0, 11);
    public static final BitField SSID = BitField.of("SubstreamID", 0, 31, 12);
    public static final BitField SID = BitField.of("StreamID", 0, 63, 32);
    public static final BitField STAG = BitField.of("STAG", 1, 15, 0);
    public static final BitField STALL = BitField.flag("Stall", 1, 31);
    public static final BitField PNU = BitField.flag("PnU", 1, 33);
    public static final BitField IND = BitField.flag("InD", 1, 34);
    public static final BitField RNW = BitField.flag("RnW", 1, 35);
    public static final BitField S2 = BitField.flag("S2", 1, 39);
    public static final BitField CLASS = BitField.of("CLASS", 1, 41, 40);
    public static final BitField TTRNW = BitField.flag("TTRnW", 1, 44);
    public static final BitField INPUT_ADDR = BitField.of("InputAddr", 2, 63, 0);
    public static final BitField NSIPA = BitField.flag("NSIPA", 3, 0);
    public static final BitField IPA = BitField.of("IPA", 3, 51, 12);
    public static final BitField FETCH_ADDR = BitField.of("FetchAddr", 3, 51, 3);

    /** Rejects values that do not fit their fields and word-3 fields the type does not have. */
    public EventRecord {
        TYPE.checkValue(type);
        SSID.checkValue(substreamId);
        STAG.checkValue(stag);
        CLASS.checkValue(clazz);
        if (EventType.hasIpa(type)) {
            IPA.checkAddress(ipa);
        } else if (ipa != 0 || nsipa) {
            throw new IllegalArgumentException(EventType.name(type) + " has no IPA/NSIPA field, yet IPA = "
                    + Bits.hex(ipa) + ", NSIPA = " + nsipa);
        }
        if (EventType.hasFetchAddr(type)) {
            FETCH_ADDR.checkAddress(fetchAddr);
        } else if (fetchAddr != 0) {
            throw new IllegalArgumentException(
                    EventType.name(type) + " has no FetchAddr field, yet FetchAddr = " + Bits.hex(fetchAddr));
        }
    }

    // ------------------------------------------------------------------ decode / encode

    /** Decodes a record from {@code dw[0..3]}. */
    public static EventRecord decode(long[] dw) {
        return decode(dw[0], dw[1], dw[2], dw[3]);
    }

    /** Decodes a record from its four words; word 3 as the type's layout says. */
    public static EventRecord decode(long dw0, long dw1, long dw2, long dw3) {
        int type = TYPE.getInt(dw0);
        boolean hasIpa = EventType.hasIpa(type);
        return new EventRecord(
                type,
                SSV.isSet(dw0),
                SSID.getInt(dw0),
                SID.getInt(dw0),
                STAG.getInt(dw1),
                STALL.isSet(dw1),
                PNU.isSet(dw1),
                IND.isSet(dw1),
                RNW.isSet(dw1),
                S2.isSet(dw1),
                CLASS.getInt(dw1),
                TTRNW.isSet(dw1),
                dw2,
                hasIpa ? IPA.address(dw3) : 0,
                EventType.hasFetchAddr(type) ? FETCH_ADDR.address(dw3) : 0,
                hasIpa && NSIPA.isSet(dw3));
    }

    /** The four words. */
    public long[] encode() {
        long[] dw = new long[DWORDS];
        encode(dw);
        return dw;
    }

    /** Writes the four words into {@code into[0..3]}. */
    public void encode(long[] into) {
        into[0] = dw0();
        into[1] = dw1();
        into[2] = inputAddr;
        into[3] = dw3();
    }

    /** Word 0: type, SSV, SubstreamID, StreamID. */
    public long dw0() {
        long w = TYPE.put(0, type);
        w = SSV.put(w, ssv);
        w = SSID.put(w, substreamId);
        return SID.put(w, Integer.toUnsignedLong(streamId));
    }

    /** Word 1: STAG, Stall, PnU, InD, RnW, S2, CLASS, TTRnW. */
    public long dw1() {
        long w = STAG.put(0, stag);
        w = STALL.put(w, stall);
        w = PNU.put(w, pnu);
        w = IND.put(w, ind);
        w = RNW.put(w, rnw);
        w = S2.put(w, s2);
        w = CLASS.put(w, clazz);
        return TTRNW.put(w, ttrnw);
    }

    /** Word 3: IPA and NSIPA, or FetchAddr, or 0, by type. */
    public long dw3() {
        if (EventType.hasIpa(type)) {
            return NSIPA.put(IPA.putAddress(0, ipa), nsipa);
        }
        return EventType.hasFetchAddr(type) ? FETCH_ADDR.putAddress(0, fetchAddr) : 0;
    }

    /** The bits of word {@code word} (0–3) that records of {@code type} define. */
    public static long definedMask(int type, int word) {
        switch (word) {
            case 0:
                return TYPE.mask() | SSV.mask() | SSID.mask() | SID.mask();
            case 1:
                return STAG.mask() | STALL.mask() | PNU.mask() | IND.mask() | RNW.mask() | S2.mask() | CLASS.mask()
                        | TTRNW.mask();
            case 2:
                return INPUT_ADDR.mask();
            case 3:
                if (EventType.hasIpa(type)) {
                    return IPA.mask() | NSIPA.mask();
                }
                return EventType.hasFetchAddr(type) ? FETCH_ADDR.mask() : 0;
            default:
                throw new IllegalArgumentException("an event record has words 0..3, not " + word);
        }
    }

    /** The type of a record's word 0, without decoding. */
    public static int type(long dw0) {
        return TYPE.getInt(dw0);
    }

    /** The StreamID of a record's word 0, without decoding. */
    public static int streamId(long dw0) {
        return SID.getInt(dw0);
    }

    // ------------------------------------------------------------------ factories (device side)

    /** A builder for a record of {@code type}, every other field zero. */
    public static Builder builder(int type) {
        return new Builder(type);
    }

    /** A builder holding this record's fields. */
    public Builder toBuilder() {
        Builder b = new Builder(type);
        b.ssv = ssv;
        b.substreamId = substreamId;
        b.streamId = streamId;
        b.stag = stag;
        b.stall = stall;
        b.pnu = pnu;
        b.ind = ind;
        b.rnw = rnw;
        b.s2 = s2;
        b.clazz = clazz;
        b.ttrnw = ttrnw;
        b.inputAddr = inputAddr;
        b.ipa = ipa;
        b.fetchAddr = fetchAddr;
        b.nsipa = nsipa;
        return b;
    }

    /** C_BAD_STREAMID: the StreamID is beyond the stream table (with the transaction's substream, if any). */
    public static EventRecord badStreamId(int streamId, boolean ssv, int substreamId) {
        return builder(EventType.C_BAD_STREAMID).stream(streamId, ssv, substreamId).build();
    }

    /**
     * The FetchAddr an SMMU reports for a fetch from {@code pa}: the field holds bits [51:3], so bits above 51 are
     * not reported. (A stream-table or CD-table base near the top of the address space plus an index makes such an
     * address; it is beyond any physical address the fetch could reach, so the fetch aborted.) Fetches are
     * 8-byte aligned: bits [2:0] are kept, and a record built with them set is refused as a caller's bug.
     */
    public static long reportedFetchAddr(long pa) {
        return pa & 0x000F_FFFF_FFFF_FFFFL;
    }

    /** F_STE_FETCH: fetching the STE (or its L1 descriptor) at {@code fetchAddr} aborted (bits [51:3] reported). */
    public static EventRecord steFetch(int streamId, boolean ssv, int substreamId, long fetchAddr) {
        return builder(EventType.F_STE_FETCH).stream(streamId, ssv, substreamId)
                .fetchAddr(reportedFetchAddr(fetchAddr)).build();
    }

    /** C_BAD_STE: the stream's STE is invalid or misconfigured. */
    public static EventRecord badSte(int streamId, boolean ssv, int substreamId) {
        return builder(EventType.C_BAD_STE).stream(streamId, ssv, substreamId).build();
    }

    /** F_STREAM_DISABLED: traffic without a substream where STE.S1DSS terminates it. */
    public static EventRecord streamDisabled(int streamId) {
        return builder(EventType.F_STREAM_DISABLED).stream(streamId, false, 0).build();
    }

    /** F_BAD_ATS_TREQ: an ATS translation request for a stream whose STE.EATS does not allow ATS. */
    public static EventRecord badAtsTranslationRequest(int streamId, boolean ssv, int substreamId, long inputAddr,
            boolean read) {
        return builder(EventType.F_BAD_ATS_TREQ).stream(streamId, ssv, substreamId).inputAddr(inputAddr).rnw(read)
                .build();
    }

    /** F_TRANSL_FORBIDDEN: translated traffic where the STE forbids it. */
    public static EventRecord translationForbidden(int streamId, long inputAddr, boolean read) {
        return builder(EventType.F_TRANSL_FORBIDDEN).stream(streamId, false, 0).inputAddr(inputAddr).rnw(read).build();
    }

    /**
     * C_BAD_SUBSTREAMID: the substream is beyond the CD table, or the stream has no substreams. The record
     * carries the transaction's SubstreamID with SSV set.
     */
    public static EventRecord badSubstreamId(int streamId, int substreamId) {
        return builder(EventType.C_BAD_SUBSTREAMID).stream(streamId, true, substreamId).build();
    }

    /** F_CD_FETCH: fetching the CD (or its L1 descriptor) at {@code fetchAddr} aborted; FetchAddr in word 3. */
    public static EventRecord cdFetch(int streamId, boolean ssv, int substreamId, long fetchAddr) {
        return builder(EventType.F_CD_FETCH).stream(streamId, ssv, substreamId)
                .fetchAddr(reportedFetchAddr(fetchAddr)).build();
    }

    /** C_BAD_CD: the CD is invalid or misconfigured. */
    public static EventRecord badCd(int streamId, boolean ssv, int substreamId) {
        return builder(EventType.C_BAD_CD).stream(streamId, ssv, substreamId).build();
    }

    /** F_CFG_CONFLICT: conflicting configuration cache entries. */
    public static EventRecord cfgConflict(int streamId, boolean ssv, int substreamId) {
        return builder(EventType.F_CFG_CONFLICT).stream(streamId, ssv, substreamId).build();
    }

    /** F_UUT: an unsupported upstream transaction. */
    public static EventRecord unsupportedTransaction(int streamId, boolean ssv, int substreamId, long inputAddr,
            boolean read, boolean privileged, boolean instruction) {
        return builder(EventType.F_UUT)
                .stream(streamId, ssv, substreamId)
                .access(inputAddr, read, privileged, instruction)
                .build();
    }

    /**
     * A translation-class fault (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION) with the "full set":
     * stream, substream, the access, the stage and CLASS, and the IPA (for a stage-2 fault, the stage-2
     * input; 0 otherwise). Stall and STAG stay clear: add them with {@code toBuilder().stall(stag)} for a
     * stalled transaction.
     */
    public static EventRecord translationFault(int type, int streamId, boolean ssv, int substreamId, long inputAddr,
            boolean read, boolean privileged, boolean instruction, boolean s2, int clazz, long ipa) {
        if (!EventType.hasIpa(type)) {
            throw new IllegalArgumentException("not a translation-class fault: " + EventType.name(type));
        }
        return builder(type)
                .stream(streamId, ssv, substreamId)
                .access(inputAddr, read, privileged, instruction)
                .s2(s2)
                .clazz(clazz)
                .ipa(ipa)
                .build();
    }

    /**
     * F_WALK_EABT: a translation-table walk's read of {@code fetchAddr} aborted; the "full set" plus
     * FetchAddr (CLASS is {@link #CLASS_TT} for the walk itself, S2 for a stage-2 walk).
     */
    public static EventRecord walkExternalAbort(int streamId, boolean ssv, int substreamId, long inputAddr,
            boolean read, boolean privileged, boolean instruction, boolean s2, int clazz, long fetchAddr) {
        return builder(EventType.F_WALK_EABT)
                .stream(streamId, ssv, substreamId)
                .access(inputAddr, read, privileged, instruction)
                .s2(s2)
                .clazz(clazz)
                .fetchAddr(reportedFetchAddr(fetchAddr))
                .build();
    }

    /** A mutable record under construction; {@link #build} validates. */
    public static final class Builder {
        private final int type;
        private boolean ssv;
        private int substreamId;
        private int streamId;
        private int stag;
        private boolean stall;
        private boolean pnu;
        private boolean ind;
        private boolean rnw;
        private boolean s2;
        private int clazz;
        private boolean ttrnw;
        private long inputAddr;
        private long ipa;
        private long fetchAddr;
        private boolean nsipa;

        private Builder(int type) {
            this.type = type;
        }

        /** StreamID, SSV and SubstreamID. */
        public Builder stream(int streamId, boolean ssv, int substreamId) {
            this.streamId = streamId;
            this.ssv = ssv;
            this.substreamId = substreamId;
            return this;
        }

        /** InputAddr, RnW, PnU and InD of the faulting access. */
        public Builder access(long inputAddr, boolean read, boolean privileged, boolean instruction) {
            this.inputAddr = inputAddr;
            this.rnw = read;
            this.pnu = privileged;
            this.ind = instruction;
            return this;
        }

        /** Stall = 1 with the stall tag {@code stag}. */
        public Builder stall(int stag) {
            this.stall = true;
            this.stag = stag;
            return this;
        }

        public Builder inputAddr(long v) {
            this.inputAddr = v;
            return this;
        }

        public Builder rnw(boolean v) {
            this.rnw = v;
            return this;
        }

        public Builder pnu(boolean v) {
            this.pnu = v;
            return this;
        }

        public Builder ind(boolean v) {
            this.ind = v;
            return this;
        }

        public Builder s2(boolean v) {
            this.s2 = v;
            return this;
        }

        public Builder clazz(int v) {
            this.clazz = v;
            return this;
        }

        public Builder ttrnw(boolean v) {
            this.ttrnw = v;
            return this;
        }

        public Builder ipa(long v) {
            this.ipa = v;
            return this;
        }

        public Builder nsipa(boolean v) {
            this.nsipa = v;
            return this;
        }

        public Builder fetchAddr(long v) {
            this.fetchAddr = v;
            return this;
        }

        /** The record; {@link IllegalArgumentException} if a value does not fit or the type lacks a field. */
        public EventRecord build() {
            return new EventRecord(type, ssv, substreamId, streamId, stag, stall, pnu, ind, rnw, s2, clazz, ttrnw,
                    inputAddr, ipa, fetchAddr, nsipa);
        }
    }
}
