package org.iommuemu.device.scenario;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.device.config.ServeConfig;

/**
 * A scenario file as read by {@link ScenarioFile}: the machine, domains, buffers, devices and the steps. Values
 * are checked as they are read (so a bad value names its line and column); names are resolved by
 * {@link ScenarioFile#validate}.
 */
public final class Scenario {
    Machine machine;
    List<Domain> domains = List.of();
    List<Buffer> buffers = List.of();
    List<Device> devices = List.of();
    List<Step> steps = List.of();
    /** Source name for messages. */
    String source = "scenario";
    /** The folder of the scenario file (external devices' commands run there); null when parsed from text. */
    java.nio.file.Path folder;
    /** Line of each step (1-based), or 0 when unknown. */
    List<Integer> stepLines = List.of();
    /** Line of each device (1-based), or 0 when unknown. */
    List<Integer> deviceLines = List.of();
    /** Whether the run switches the server's stale-DMA sanitizer on (the default). */
    boolean sanitizer = true;

    @JsonProperty("sanitizer")
    void setSanitizer(boolean value) {
        sanitizer = value;
    }

    @JsonProperty("machine")
    void setMachine(Machine value) {
        machine = value;
    }

    @JsonProperty("domains")
    void setDomains(List<Domain> value) {
        domains = value == null ? List.of() : value;
    }

    @JsonProperty("buffers")
    void setBuffers(List<Buffer> value) {
        buffers = value == null ? List.of() : value;
    }

    @JsonProperty("devices")
    void setDevices(List<Device> value) {
        devices = value == null ? List.of() : value;
    }

    @JsonProperty("steps")
    void setSteps(List<Step> value) {
        steps = value == null ? List.of() : value;
    }

    /** The {@code machine:} section: {@code ram} and {@code iommus} exactly as in the serve configuration. */
    static final class Machine {
        List<ServeConfig.Ram> ram;
        List<ServeConfig.Iommu> iommus;

        @JsonProperty("ram")
        void setRam(List<ServeConfig.Ram> value) {
            ram = value;
        }

        @JsonProperty("iommus")
        void setIommus(List<ServeConfig.Iommu> value) {
            iommus = value;
        }
    }

    /** An IOMMU domain of the machine's SMMUv3 driver. */
    static final class Domain {
        String name;
        List<String> iommus = List.of();
        int stage = 1;
        int granuleLg2 = 12;
        int inputBits = 48;
        boolean lazy;

        @JsonProperty("name")
        void setName(String value) {
            name = value;
        }

        @JsonProperty("iommus")
        void setIommus(List<String> value) {
            if (value == null || value.isEmpty()) {
                throw new IllegalArgumentException("iommus must name at least one instance");
            }
            iommus = value;
        }

        @JsonProperty("stage")
        void setStage(int value) {
            if (value != 1 && value != 2) {
                throw new IllegalArgumentException("stage must be 1 or 2, got " + value);
            }
            stage = value;
        }

        @JsonProperty("granule")
        void setGranule(Object value) {
            long g = ServeConfig.number(value, "granule");
            if (g != 4096 && g != 16384 && g != 65536) {
                throw new IllegalArgumentException("granule must be 4K, 16K or 64K, got " + value);
            }
            granuleLg2 = Long.numberOfTrailingZeros(g);
        }

        @JsonProperty("input_bits")
        void setInputBits(int value) {
            if (value < 16 || value > 52) {
                throw new IllegalArgumentException("input_bits must be 16 to 52, got " + value);
            }
            inputBits = value;
        }

        /** A stage-2 domain this stage-1 domain is nested on (its output is then an IPA), or null. */
        String nestParent;

        @JsonProperty("nest_parent")
        void setNestParent(String value) {
            nestParent = value;
        }

        @JsonProperty("flush")
        void setFlush(String value) {
            lazy = switch (value) {
                case "strict" -> false;
                case "lazy" -> true;
                default -> throw new IllegalArgumentException("flush must be strict or lazy, got '" + value + "'");
            };
        }
    }

    /** A buffer allocated from the driver heap. */
    static final class Buffer {
        String name;
        Long size;

        @JsonProperty("name")
        void setName(String value) {
            name = value;
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = positive(value, "size");
        }
    }

    /** A DMA master: a stream of an IOMMU instance, attached to a domain. */
    static final class Device {
        String name;
        String iommu;
        Integer stream;
        String domain;

        @JsonProperty("name")
        void setName(String value) {
            name = value;
        }

        @JsonProperty("iommu")
        void setIommu(String value) {
            iommu = value;
        }

        @JsonProperty("stream")
        void setStream(Object value) {
            long s = ServeConfig.number(value, "stream");
            if (s > 0xFFFF_FFFFL) {
                throw new IllegalArgumentException("stream " + value + " is not a 32-bit stream id");
            }
            stream = (int) s;
        }

        @JsonProperty("domain")
        void setDomain(String value) {
            domain = value;
        }

        /** A substream id: the device's DMA carries it and only that substream is attached; null for none. */
        Integer substream;

        @JsonProperty("substream")
        void setSubstream(Object value) {
            long v = ServeConfig.number(value, "substream");
            if (v < 1 || v > 0xF_FFFF) {
                throw new IllegalArgumentException("substream must be 1 to 0xFFFFF (a 20-bit SubstreamID; 0 is the"
                        + " stream's own), got " + value);
            }
            substream = (int) v;
        }

        Nic nic;

        @JsonProperty("nic")
        void setNic(Nic value) {
            nic = value;
        }

        /**
         * An external device: a program outside the runner (any language) attaches on the stream over the bus and
         * makes the DMA. The runner attaches the stream to the domain but opens no session of its own.
         */
        boolean external;

        @JsonProperty("external")
        void setExternal(boolean value) {
            external = value;
        }

        /** How long the runner waits for an external device to attach, in nanoseconds. */
        long attachTimeoutNanos = DEFAULT_ATTACH_TIMEOUT_NANOS;
        boolean attachTimeoutGiven;

        @JsonProperty("attach_timeout")
        void setAttachTimeout(Object value) {
            attachTimeoutNanos = duration(value, "attach_timeout");
            attachTimeoutGiven = true;
        }

        /**
         * The program the runner starts for an external device (argv; {target}, {iommu}, {stream}, {name}
         * replaced), in the scenario file's folder; null when someone else starts it.
         */
        List<String> command;

        @JsonProperty("command")
        void setCommand(List<String> value) {
            if (value == null || value.isEmpty() || value.stream().anyMatch(a -> a == null || a.isEmpty())) {
                throw new IllegalArgumentException("command must be a non-empty list of non-empty arguments,"
                        + " e.g. [node, index.js, --target, '{target}']");
            }
            command = List.copyOf(value);
        }

        /**
         * {@code ats: true}: the device implements PCIe ATS. The runner attaches it with ATS, its driver enables ATS
         * on its stream (SMMUv3 STE.EATS=1), and all its DMA goes through its device-side ATC, which listens for the
         * IOMMU's invalidations; an external one attaches with ATS itself and keeps its own ATC.
         */
        boolean ats;

        @JsonProperty("ats")
        void setAts(boolean value) {
            ats = value;
        }

        /** {@code atc:} the device-side ATC of an ATS device; null for the defaults. */
        AtcSpec atc;

        @JsonProperty("atc")
        void setAtc(AtcSpec value) {
            atc = value;
        }
    }

    /**
     * {@code atc:} of an ATS device: {@code capacity} in regions (1 to 4096, default 64, the
     * {@link org.iommuemu.dma.Atc} default), and how the device answers invalidations: {@code answer: at_once}
     * (the default), {@code delayed} (after {@code delay}, default 10ms) or {@code never} (its IOMMU's sync then
     * times out: CERROR_ATC_INV_SYNC / ITE).
     */
    static final class AtcSpec {
        int capacity = org.iommuemu.dma.Atc.DEFAULT_CAPACITY;
        org.iommuemu.dma.AtcListener.Answer answer = org.iommuemu.dma.AtcListener.Answer.AT_ONCE;
        /** Delay of a {@code delayed} answer, in nanoseconds. */
        long delayNanos = DEFAULT_ATC_DELAY_NANOS;
        boolean delayGiven;

        @JsonProperty("capacity")
        void setCapacity(Object value) {
            long v = ServeConfig.number(value, "capacity");
            if (v < 1 || v > org.iommuemu.dma.Atc.MAX_CAPACITY) {
                throw new IllegalArgumentException("capacity must be 1 to " + org.iommuemu.dma.Atc.MAX_CAPACITY
                        + " regions, got " + value);
            }
            capacity = (int) v;
        }

        @JsonProperty("answer")
        void setAnswer(String value) {
            answer = switch (value) {
                case "at_once" -> org.iommuemu.dma.AtcListener.Answer.AT_ONCE;
                case "delayed" -> org.iommuemu.dma.AtcListener.Answer.DELAYED;
                case "never" -> org.iommuemu.dma.AtcListener.Answer.NEVER;
                default -> throw new IllegalArgumentException("answer must be at_once, delayed or never, got '"
                        + value + "'");
            };
        }

        @JsonProperty("delay")
        void setDelay(Object value) {
            delayNanos = duration(value, "delay");
            delayGiven = true;
        }

        /** "answers at once", "answers after 20 ms", "never answers". */
        String describe() {
            return switch (answer) {
                case AT_ONCE -> "answers invalidations at once";
                case DELAYED -> "answers invalidations after " + delayNanos / 1_000_000.0 + " ms";
                case NEVER -> "never answers invalidations";
            };
        }
    }

    /** Default {@code delay} of an ATC that answers {@code delayed}: 10 ms. */
    static final long DEFAULT_ATC_DELAY_NANOS = 10_000_000L;

    /** Default {@code attach_timeout} of an external device: 30 s. */
    static final long DEFAULT_ATTACH_TIMEOUT_NANOS = 30_000_000_000L;

    /**
     * A duration: a number of seconds, or a string with a unit ({@code 500ms}, {@code 30s}, {@code 2m}); 1 ms to
     * 1 hour. Returns nanoseconds.
     */
    static long duration(Object value, String field) {
        double seconds;
        if (value instanceof Number n) {
            seconds = n.doubleValue();
        } else {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\s*([0-9]+(?:\\.[0-9]+)?)\\s*(ms|s|m)?\\s*")
                    .matcher(String.valueOf(value));
            if (!m.matches()) {
                throw new IllegalArgumentException(field + " must be a duration such as 30s, 500ms or 2m, got '"
                        + value + "'");
            }
            double v = Double.parseDouble(m.group(1));
            seconds = m.group(2) == null || m.group(2).equals("s") ? v : m.group(2).equals("ms") ? v / 1000 : v * 60;
        }
        if (!(seconds >= 0.001 && seconds <= 3600)) {
            throw new IllegalArgumentException(field + " must be 1ms to 1 hour, got " + value);
        }
        return Math.round(seconds * 1e9);
    }

    /**
     * {@code nic}: the device is a NIC ({@link org.iommuemu.dma.masters.Nic}) whose RX and TX descriptor rings the
     * runner allocates and maps at {@code ring_iova} in the device's domain (RX ring first, then TX), as a network
     * driver's coherent allocation would be.
     */
    static final class Nic {
        Long ringIova;
        int rxEntries = 256;
        int txEntries = 256;

        @JsonProperty("ring_iova")
        void setRingIova(Object value) {
            ringIova = ServeConfig.number(value, "ring_iova");
        }

        @JsonProperty("rx_entries")
        void setRxEntries(int value) {
            rxEntries = entries(value, "rx_entries");
        }

        @JsonProperty("tx_entries")
        void setTxEntries(int value) {
            txEntries = entries(value, "tx_entries");
        }

        private static int entries(int value, String field) {
            if (value < 2 || value > 4096) {
                throw new IllegalArgumentException(field + " must be 2 to 4096, got " + value);
            }
            return value;
        }

        /** Bytes of both rings together. */
        long ringBytes() {
            return (long) (rxEntries + txEntries) * org.iommuemu.dma.masters.NicDescriptor.SIZE;
        }
    }

    /** One step: exactly one of its keys. */
    static final class Step {
        Map map;
        MapSg mapSg;
        Unmap unmap;
        Dma dma;
        Flush flush;
        Expect expect;
        Traffic traffic;
        NicReceive nicReceive;
        org.iommuemu.device.inject.FaultSpec inject;
        ClearFaults clearFaults;
        Wait wait;
        int keys;

        @JsonProperty("wait")
        void setWait(Wait value) {
            wait = value;
            keys++;
        }

        @JsonProperty("inject")
        void setInject(org.iommuemu.device.inject.FaultSpec value) {
            inject = value;
            keys++;
        }

        @JsonProperty("clear_faults")
        void setClearFaults(ClearFaults value) {
            clearFaults = value;
            keys++;
        }

        @JsonProperty("traffic")
        void setTraffic(Traffic value) {
            traffic = value;
            keys++;
        }

        @JsonProperty("nic_receive")
        void setNicReceive(NicReceive value) {
            nicReceive = value;
            keys++;
        }

        @JsonProperty("map")
        void setMap(Map value) {
            map = value;
            keys++;
        }

        @JsonProperty("map_sg")
        void setMapSg(MapSg value) {
            mapSg = value;
            keys++;
        }

        @JsonProperty("unmap")
        void setUnmap(Unmap value) {
            unmap = value;
            keys++;
        }

        @JsonProperty("dma")
        void setDma(Dma value) {
            dma = value;
            keys++;
        }

        @JsonProperty("flush")
        void setFlush(Flush value) {
            flush = value;
            keys++;
        }

        @JsonProperty("expect")
        void setExpect(Expect value) {
            expect = value;
            keys++;
        }

        String kind() {
            return map != null ? "map" : mapSg != null ? "map_sg" : unmap != null ? "unmap" : dma != null ? "dma"
                    : flush != null ? "flush" : expect != null ? "expect" : traffic != null ? "traffic"
                    : nicReceive != null ? "nic_receive" : inject != null ? "inject"
                    : clearFaults != null ? "clear_faults" : wait != null ? "wait" : "?";
        }
    }

    /**
     * {@code wait}: waits until an external device has attached ({@code attached: true}), has detached again
     * ({@code detached: true}: it attached and no session of it is live), or has made at least {@code dma_ops}
     * DMA operations, within {@code timeout} (default 30 s).
     */
    static final class Wait {
        String device;
        boolean attached;
        boolean detached;
        Long dmaOps;
        long timeoutNanos = DEFAULT_ATTACH_TIMEOUT_NANOS;
        int conditions;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("attached")
        void setAttached(boolean value) {
            if (!value) {
                throw new IllegalArgumentException("attached can only be true (to wait for a detach: detached: true)");
            }
            attached = true;
            conditions++;
        }

        @JsonProperty("detached")
        void setDetached(boolean value) {
            if (!value) {
                throw new IllegalArgumentException("detached can only be true (to wait for an attach: attached: true)");
            }
            detached = true;
            conditions++;
        }

        @JsonProperty("dma_ops")
        void setDmaOps(Object value) {
            dmaOps = positive(value, "dma_ops");
            conditions++;
        }

        @JsonProperty("timeout")
        void setTimeout(Object value) {
            timeoutNanos = duration(value, "timeout");
        }

        /** What is waited for, for messages: "detached", "attached" or "dma_ops >= N". */
        String condition() {
            return detached ? "detached" : attached ? "attached" : "dma_ops >= " + dmaOps;
        }
    }

    /** {@code clear_faults}: the faults this scenario injected with {@code label}, or all of them. */
    static final class ClearFaults {
        String label;

        @JsonProperty("label")
        void setLabel(String value) {
            label = value;
        }
    }

    /** Where a mapping points: a buffer (plus offset) or a physical address. */
    static class Target {
        String buffer;
        long offset;
        Long pa;

        @JsonProperty("buffer")
        void setBuffer(String value) {
            buffer = value;
        }

        @JsonProperty("offset")
        void setOffset(Object value) {
            offset = ServeConfig.number(value, "offset");
        }

        @JsonProperty("pa")
        void setPa(Object value) {
            pa = ServeConfig.number(value, "pa");
        }
    }

    /** {@code map}: domain, iova, buffer [+ offset] or pa, size, prot. */
    static final class Map extends Target {
        String domain;
        Long iova;
        Long size;
        int prot = Prot.READ | Prot.WRITE;

        @JsonProperty("domain")
        void setDomain(String value) {
            domain = value;
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = positive(value, "size");
        }

        @JsonProperty("prot")
        void setProt(String value) {
            prot = prot(value);
        }
    }

    /** One entry of a {@code map_sg} list. */
    static final class SgPart extends Target {
        Long size;

        @JsonProperty("size")
        void setSize(Object value) {
            size = positive(value, "size");
        }
    }

    /** {@code map_sg}: domain, iova, entries (buffer [+ offset] or pa, size), prot. */
    static final class MapSg {
        String domain;
        Long iova;
        List<SgPart> entries = List.of();
        int prot = Prot.READ | Prot.WRITE;

        @JsonProperty("domain")
        void setDomain(String value) {
            domain = value;
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("entries")
        void setEntries(List<SgPart> value) {
            if (value == null || value.isEmpty()) {
                throw new IllegalArgumentException("entries must hold at least one entry");
            }
            entries = value;
        }

        @JsonProperty("prot")
        void setProt(String value) {
            prot = prot(value);
        }
    }

    /** {@code unmap}: domain, iova, size. */
    static final class Unmap {
        String domain;
        Long iova;
        Long size;

        @JsonProperty("domain")
        void setDomain(String value) {
            domain = value;
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = positive(value, "size");
        }
    }

    /** {@code flush}: drains a lazy domain's flush queue (its deferred invalidations). */
    static final class Flush {
        String domain;

        @JsonProperty("domain")
        void setDomain(String value) {
            domain = value;
        }
    }

    /** {@code dma}: device, op read|write, iova, size, data (writes). */
    static final class Dma {
        String device;
        Boolean write;
        Long iova;
        Long size;
        Data data;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("op")
        void setOp(String value) {
            write = switch (value) {
                case "read" -> false;
                case "write" -> true;
                default -> throw new IllegalArgumentException("op must be read or write, got '" + value + "'");
            };
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = intSize(value, "for one DMA");
        }

        @JsonProperty("data")
        void setData(Data value) {
            data = value;
        }
    }

    /**
     * {@code traffic}: a {@link org.iommuemu.dma.masters.TrafficGenerator} run by a device: pattern, the iova
     * range, request size, ops and/or bytes, read fraction, seed, window; stride (strided), hot_pages,
     * hot_probability and page_size (hot_set).
     */
    static final class Traffic {
        String device;
        org.iommuemu.dma.masters.TrafficSpec.Builder spec = org.iommuemu.dma.masters.TrafficSpec.builder();
        String pattern = "sequential";
        Long iova;
        Long range;
        int bounds;
        int hotPages;
        double hotProbability = -1;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("pattern")
        void setPattern(String value) {
            spec.pattern(switch (value) {
                case "sequential" -> org.iommuemu.dma.masters.TrafficSpec.Pattern.SEQUENTIAL;
                case "random" -> org.iommuemu.dma.masters.TrafficSpec.Pattern.RANDOM;
                case "strided" -> org.iommuemu.dma.masters.TrafficSpec.Pattern.STRIDED;
                case "hot_set" -> org.iommuemu.dma.masters.TrafficSpec.Pattern.HOT_SET;
                default -> throw new IllegalArgumentException("pattern must be sequential, random, strided or"
                        + " hot_set, got '" + value + "'");
            });
            pattern = value;
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("range")
        void setRange(Object value) {
            range = positive(value, "range");
        }

        @JsonProperty("request")
        void setRequest(Object value) {
            spec.requestSize((int) intSize(value, "for one request"));
        }

        @JsonProperty("ops")
        void setOps(Object value) {
            spec.ops(positive(value, "ops"));
            bounds++;
        }

        @JsonProperty("bytes")
        void setBytes(Object value) {
            spec.bytes(positive(value, "bytes"));
            bounds++;
        }

        @JsonProperty("read_fraction")
        void setReadFraction(double value) {
            spec.readFraction(value);
        }

        @JsonProperty("seed")
        void setSeed(long value) {
            spec.seed(value);
        }

        @JsonProperty("window")
        void setWindow(int value) {
            spec.window(value);
        }

        @JsonProperty("stride")
        void setStride(Object value) {
            spec.stride(positive(value, "stride"));
        }

        @JsonProperty("page_size")
        void setPageSize(Object value) {
            spec.pageSize(positive(value, "page_size"));
        }

        @JsonProperty("hot_pages")
        void setHotPages(int value) {
            hotPages = value;
        }

        @JsonProperty("hot_probability")
        void setHotProbability(double value) {
            hotProbability = value;
        }

        /** The generator's spec; IllegalArgumentException names the value it refuses. */
        org.iommuemu.dma.masters.TrafficSpec build() {
            spec.range(iova, range);
            if (hotPages != 0 || hotProbability >= 0) {
                if (!pattern.equals("hot_set")) {
                    throw new IllegalArgumentException("hot_pages and hot_probability go with pattern hot_set");
                }
                spec.hotSet(hotPages, hotProbability < 0 ? 0.9 : hotProbability);
            }
            return spec.build();
        }
    }

    /**
     * {@code nic_receive}: the runner plays a NIC's driver for {@code packets} packets of {@code size} bytes: per
     * packet it maps a receive buffer (the next {@code size}-rounded-up-to-the-granule slot of {@code buffer}) at a
     * fresh iova from {@code iova} on, posts it in the RX ring, the NIC receives the packet into it by DMA, and the
     * driver reads the descriptor back, unmaps the buffer (strict: invalidated now; lazy: queued) and checks the
     * bytes. Packet {@code i} is {@code data} with seed + i (or the pattern).
     */
    static final class NicReceive {
        String device;
        Long packets;
        Long size;
        Long iova;
        String buffer;
        Data data;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("packets")
        void setPackets(Object value) {
            packets = positive(value, "packets");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            long v = positive(value, "size");
            if (v > 65536) {
                throw new IllegalArgumentException("size " + value + " is larger than a 64 KiB packet");
            }
            size = v;
        }

        @JsonProperty("iova")
        void setIova(Object value) {
            iova = ServeConfig.number(value, "iova");
        }

        @JsonProperty("buffer")
        void setBuffer(String value) {
            buffer = value;
        }

        @JsonProperty("data")
        void setData(Data value) {
            data = value;
        }
    }

    /** A byte pattern: every byte {@code pattern}, or pseudo-random bytes from {@code seed}. */
    static final class Data {
        Integer pattern;
        Long seed;

        @JsonProperty("pattern")
        void setPattern(Object value) {
            if (seed != null) {
                throw new IllegalArgumentException("data has both pattern and seed; give one");
            }
            long p = ServeConfig.number(value, "pattern");
            if (p > 0xFF) {
                throw new IllegalArgumentException("pattern " + value + " is not a byte (0 to 0xFF)");
            }
            pattern = (int) p;
        }

        @JsonProperty("seed")
        void setSeed(long value) {
            if (pattern != null) {
                throw new IllegalArgumentException("data has both pattern and seed; give one");
            }
            seed = value;
        }

        boolean given() {
            return pattern != null || seed != null;
        }

        byte[] bytes(int size) {
            byte[] b = new byte[size];
            if (pattern != null) {
                java.util.Arrays.fill(b, (byte) (int) pattern);
            } else {
                new Random(seed).nextBytes(b);
            }
            return b;
        }

        @Override
        public String toString() {
            return pattern != null ? String.format("pattern 0x%02X", pattern) : "seed " + seed;
        }
    }

    /** {@code expect}: exactly one of memory, read, fault, events, counter. */
    static final class Expect {
        MemoryExpect memory;
        ReadExpect read;
        FaultExpect fault;
        EventsExpect events;
        CounterExpect counter;
        DeviceCounterExpect deviceCounter;
        SanitizerExpect sanitizer;
        int keys;

        /** The expect's key: memory, read, fault, events, counter, device_counter or sanitizer. */
        String kind() {
            return memory != null ? "memory" : read != null ? "read" : fault != null ? "fault" : events != null
                    ? "events" : deviceCounter != null ? "device_counter" : sanitizer != null ? "sanitizer"
                    : "counter";
        }

        @JsonProperty("sanitizer")
        void setSanitizer(SanitizerExpect value) {
            sanitizer = value;
            keys++;
        }

        @JsonProperty("device_counter")
        void setDeviceCounter(DeviceCounterExpect value) {
            deviceCounter = value;
            keys++;
        }

        @JsonProperty("memory")
        void setMemory(MemoryExpect value) {
            memory = value;
            keys++;
        }

        @JsonProperty("read")
        void setRead(ReadExpect value) {
            read = value;
            keys++;
        }

        @JsonProperty("fault")
        void setFault(FaultExpect value) {
            fault = value;
            keys++;
        }

        @JsonProperty("events")
        void setEvents(EventsExpect value) {
            events = value;
            keys++;
        }

        @JsonProperty("counter")
        void setCounter(CounterExpect value) {
            counter = value;
            keys++;
        }
    }

    /** The bytes of a buffer (read by the CPU from guest memory) equal a pattern. */
    static final class MemoryExpect {
        String buffer;
        long offset;
        Long size;
        Data equals;

        @JsonProperty("buffer")
        void setBuffer(String value) {
            buffer = value;
        }

        @JsonProperty("offset")
        void setOffset(Object value) {
            offset = ServeConfig.number(value, "offset");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = intSize(value, "to compare");
        }

        @JsonProperty("equals")
        void setEquals(Data value) {
            equals = value;
        }
    }

    /** The data of a device's last DMA read equals a pattern. */
    static final class ReadExpect {
        String device;
        Data equals;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("equals")
        void setEquals(Data value) {
            equals = value;
        }
    }

    /** The fault of a device's last DMA: none, or a bus fault kind (TRANSLATION, PERMISSION...). */
    static final class FaultExpect {
        String device;
        String kind;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("kind")
        void setKind(String value) {
            String k = value.toUpperCase(Locale.ROOT);
            if (!k.equals("NONE") && !FAULT_KINDS.contains(k)) {
                throw new IllegalArgumentException("kind must be none or one of " + FAULT_KINDS + ", got '"
                        + value + "'");
            }
            kind = k;
        }
    }

    /** How many event records of one type the driver has read from an instance's event queue so far. */
    static final class EventsExpect {
        String iommu;
        Integer type;
        String typeName;
        Long count;

        @JsonProperty("iommu")
        void setIommu(String value) {
            iommu = value;
        }

        @JsonProperty("type")
        void setType(String value) {
            int t = Counters.eventType(value);
            if (t < 0) {
                throw new IllegalArgumentException("type '" + value + "' is neither an SMMUv3 event type (F_TRANSLATION,"
                        + " F_PERMISSION, C_BAD_STE...) nor a VT-d fault reason (READ, WRITE, SM_WRITE,"
                        + " CONTEXT_NOT_PRESENT...)");
            }
            type = t;
            typeName = value;
        }

        @JsonProperty("count")
        void setCount(Object value) {
            count = ServeConfig.number(value, "count");
        }
    }

    /** A counter of an instance's statistics within [min, max]. */
    /** The bounds an expect puts on a count: min and/or max, both inclusive. */
    abstract static class Bounded {
        Long min;
        Long max;

        @JsonProperty("min")
        void setMin(Object value) {
            min = ServeConfig.number(value, "min");
        }

        @JsonProperty("max")
        void setMax(Object value) {
            max = ServeConfig.number(value, "max");
        }

        boolean holds(long value) {
            return (min == null || value >= min) && (max == null || value <= max);
        }

        /** " = 5", " in [1, 4]", " >= 1" or " <= 0". */
        String bounds() {
            return min != null && max != null ? (min.equals(max) ? " = " + min : " in [" + min + ", " + max + "]")
                    : min != null ? " >= " + min : " <= " + max;
        }
    }

    /**
     * {@code expect: sanitizer}: how many reports the stale-DMA sanitizer made since the run started, of one kind
     * ({@code STALE_TRANSLATION}, {@code LAZY_BOUND_EXCEEDED}, {@code UNMAPPED_MEMORY}, {@code FREED_MEMORY},
     * {@code TRANSLATED_STALE_ATC}, {@code TRANSLATED_UNMAPPED_MEMORY}) or of all kinds.
     */
    static final class SanitizerExpect extends Bounded {
        static final List<String> KINDS = List.of("STALE_TRANSLATION", "LAZY_BOUND_EXCEEDED", "UNMAPPED_MEMORY",
                "FREED_MEMORY", "TRANSLATED_STALE_ATC", "TRANSLATED_UNMAPPED_MEMORY");
        String kind;

        @JsonProperty("kind")
        void setKind(String value) {
            String k = value.toUpperCase(java.util.Locale.ROOT);
            if (!KINDS.contains(k)) {
                throw new IllegalArgumentException("kind must be one of " + KINDS + ", got '" + value + "'");
            }
            kind = k;
        }
    }

    static final class CounterExpect extends Bounded {
        String iommu;
        String name;

        @JsonProperty("iommu")
        void setIommu(String value) {
            iommu = value;
        }

        @JsonProperty("name")
        void setName(String value) {
            Counters.check(value);
            name = value;
        }
    }

    /**
     * {@code expect: device_counter}: a counter of a scenario device, over the steps so far: {@code dma_ops},
     * {@code dma_bytes}, {@code dma_faults} (dma and traffic steps); for NICs {@code rx_packets},
     * {@code rx_bytes}, {@code rx_drops}, {@code rx_faults}; for ATS devices ({@code ats: true}, not external)
     * {@code atc_hits}, {@code atc_misses} (ATC lookups, one per region-sized piece of a DMA),
     * {@code atc_translations} (translation requests: one per miss), {@code atc_translate_faults} (of those, refused
     * or answered "no access": the DMA faulted), {@code atc_invalidations} (invalidations received),
     * {@code atc_invalidated} (cached regions they dropped) and {@code atc_completions} (completions sent).
     */
    static final class DeviceCounterExpect extends Bounded {
        static final List<String> NAMES = List.of("dma_ops", "dma_bytes", "dma_faults", "rx_packets", "rx_bytes",
                "rx_drops", "rx_faults", "atc_hits", "atc_misses", "atc_translations", "atc_translate_faults",
                "atc_invalidations", "atc_invalidated", "atc_completions");
        String device;
        String name;

        @JsonProperty("device")
        void setDevice(String value) {
            device = value;
        }

        @JsonProperty("name")
        void setName(String value) {
            if (!NAMES.contains(value)) {
                throw new IllegalArgumentException("unknown device counter '" + value + "' (one of " + NAMES + ")");
            }
            name = value;
        }
    }

    static final List<String> FAULT_KINDS = faultKinds();

    private static List<String> faultKinds() {
        List<String> kinds = new ArrayList<>();
        for (org.iommuemu.proto.v1.FaultKind k : org.iommuemu.proto.v1.FaultKind.values()) {
            if (k != org.iommuemu.proto.v1.FaultKind.FAULT_KIND_UNSPECIFIED
                    && k != org.iommuemu.proto.v1.FaultKind.UNRECOGNIZED) {
                kinds.add(k.name());
            }
        }
        return List.copyOf(kinds);
    }

    static int prot(String value) {
        return switch (value) {
            case "rw" -> Prot.READ | Prot.WRITE;
            case "r" -> Prot.READ;
            case "w" -> Prot.WRITE;
            default -> throw new IllegalArgumentException("prot must be rw, r or w, got '" + value + "'");
        };
    }

    /** A positive {@code size} that fits one array: {@code purpose} says what for, in the error. */
    static long intSize(Object value, String purpose) {
        long s = positive(value, "size");
        if (s > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("size " + value + " is too large " + purpose);
        }
        return s;
    }

    static long positive(Object value, String field) {
        long v = ServeConfig.number(value, field);
        if (v == 0) {
            throw new IllegalArgumentException(field + " must not be 0");
        }
        return v;
    }
}
