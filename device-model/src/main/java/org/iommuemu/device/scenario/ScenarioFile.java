package org.iommuemu.device.scenario;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.config.ConfigException;
import org.iommuemu.device.config.ServeConfig;
import org.iommuemu.device.config.YamlFiles;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;

/**
 * Reads a scenario file strictly ({@link YamlFiles}: unknown keys and bad values name the file, line and column)
 * and checks what the reader cannot: required keys, that every name a step uses is defined, and that devices
 * and domains are on SMMUv3 instances of the machine. Semantic errors name the section entry or the step index
 * and the step's line.
 */
public final class ScenarioFile {
    private ScenarioFile() {}

    /** Reads and checks {@code file}; returns the scenario and the machine it runs on. */
    public static Loaded read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ScenarioException(file + ": no such file");
        } catch (IOException e) {
            throw new ScenarioException(file + ": cannot read: " + e.getMessage());
        }
        Loaded loaded = parse(file.toString(), text);
        loaded.scenario().folder = file.toAbsolutePath().getParent();
        return loaded;
    }

    /** Parses and checks {@code text}, naming it {@code source} in messages. */
    public static Loaded parse(String source, String text) {
        Scenario s;
        try {
            s = YamlFiles.parse(source, text, Scenario.class);
        } catch (ConfigException e) {
            throw new ScenarioException(e.getMessage(), e);
        }
        s.source = source;
        s.stepLines = listLines(text, "steps");
        s.deviceLines = listLines(text, "devices");
        MachineConfig machine;
        try {
            machine = s.machine == null ? MachineConfig.defaults()
                    : ServeConfig.machineOnly(s.machine.ram, s.machine.iommus).apply(MachineConfig.defaults());
        } catch (ConfigException | IllegalArgumentException e) {
            throw new ScenarioException(source + ": machine: " + e.getMessage(), e);
        }
        validate(s, machine);
        return new Loaded(s, machine);
    }

    /** A checked scenario and its machine. */
    public record Loaded(Scenario scenario, MachineConfig machine) {}

    /** The line of each element of the top-level list {@code key} (0 where it cannot be found). */
    private static List<Integer> listLines(String text, String key) {
        List<Integer> lines = new ArrayList<>();
        try (JsonParser p = new YAMLFactory().createParser(text)) {
            int depth = 0;
            boolean inSteps = false;
            String field = null;
            for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                if (t == JsonToken.FIELD_NAME && depth == 1) {
                    field = p.currentName();
                } else if (t == JsonToken.START_ARRAY || t == JsonToken.START_OBJECT) {
                    if (depth == 1 && t == JsonToken.START_ARRAY && key.equals(field)) {
                        inSteps = true;
                    } else if (inSteps && depth == 2) {
                        lines.add(p.currentTokenLocation().getLineNr());
                    }
                    depth++;
                } else if (t == JsonToken.END_ARRAY || t == JsonToken.END_OBJECT) {
                    depth--;
                    if (depth == 1) {
                        inSteps = false;
                    }
                } else if (inSteps && depth == 2) {
                    lines.add(p.currentTokenLocation().getLineNr()); // a scalar step: rejected by the reader
                }
            }
        } catch (IOException e) {
            return List.of(); // the reader has already accepted the text; lines are a courtesy
        }
        return lines;
    }

    private static void validate(Scenario s, MachineConfig machine) {
        HashMap<String, IommuSpec> iommus = new HashMap<>();
        for (IommuSpec spec : machine.iommus()) {
            iommus.put(spec.name(), spec);
        }
        HashMap<String, Scenario.Domain> domains = new HashMap<>();
        for (int i = 0; i < s.domains.size(); i++) {
            Scenario.Domain d = s.domains.get(i);
            String where = s.source + ": domains[" + i + "]";
            if (d == null || d.name == null || d.iommus.isEmpty()) {
                throw new ScenarioException(where + ": name and iommus are required");
            }
            where += " (" + d.name + ")";
            if (domains.put(d.name, d) != null) {
                throw new ScenarioException(where + ": a second domain named '" + d.name + "'");
            }
            Set<String> seen = new HashSet<>();
            IommuType kind = null;
            for (String m : d.iommus) {
                IommuType k = driven(where, iommus, m);
                if (!seen.add(m)) {
                    throw new ScenarioException(where + ": iommus names " + m + " twice");
                }
                require(where, kind == null || kind == k, "a domain's instances are of one kind (" + d.iommus
                        + " mixes " + kind + " and " + k + ")");
                kind = k;
            }
            if (kind == IommuType.VTD) {
                require(where, d.granuleLg2 == 12, "VT-d page tables have a 4K granule (granule is "
                        + (1 << d.granuleLg2 - 10) + "K)");
            }
            if (d.nestParent != null) {
                Scenario.Domain parent = domains.get(d.nestParent);
                require(where, parent != null && parent != d, "nest_parent '" + d.nestParent + "' must name a domain"
                        + " defined before this one");
                require(where, d.stage == 1 && parent.stage == 2, "nest_parent nests a stage-1 domain on a stage-2"
                        + " one (this is stage " + d.stage + ", " + parent.name + " stage " + parent.stage + ")");
                require(where, parent.iommus.containsAll(d.iommus), "every instance of a nested domain must be one"
                        + " of its nest_parent's " + parent.iommus);
            }
        }
        HashMap<String, Scenario.Buffer> buffers = new HashMap<>();
        for (int i = 0; i < s.buffers.size(); i++) {
            Scenario.Buffer b = s.buffers.get(i);
            String where = s.source + ": buffers[" + i + "]";
            if (b == null || b.name == null || b.size == null) {
                throw new ScenarioException(where + ": name and size are required");
            }
            if (buffers.put(b.name, b) != null) {
                throw new ScenarioException(where + ": a second buffer named '" + b.name + "'");
            }
        }
        HashMap<String, Scenario.Device> devices = new HashMap<>();
        Set<String> streams = new HashSet<>();
        for (int i = 0; i < s.devices.size(); i++) {
            Scenario.Device d = s.devices.get(i);
            int line = i < s.deviceLines.size() ? s.deviceLines.get(i) : 0;
            String where = s.source + (line > 0 ? ":" + line : "") + ": devices[" + i + "]";
            if (d == null || d.name == null || d.iommu == null || d.stream == null || d.domain == null) {
                throw new ScenarioException(where + ": name, iommu, stream and domain are required");
            }
            where += " (" + d.name + ")";
            if (devices.put(d.name, d) != null) {
                throw new ScenarioException(where + ": a second device named '" + d.name + "'");
            }
            IommuType type = driven(where, iommus, d.iommu);
            Scenario.Domain dom = known(where, "domain", domains, d.domain);
            if (!dom.iommus.contains(d.iommu)) {
                throw new ScenarioException(where + ": domain " + d.domain + " is on " + dom.iommus + ", not on "
                        + d.iommu);
            }
            if (!streams.add(d.iommu + "/" + d.stream)) {
                throw new ScenarioException(where + ": stream " + d.stream + " of " + d.iommu
                        + " belongs to another device already");
            }
            if (d.substream != null) {
                require(where, dom.stage == 1 && dom.nestParent == null, "substream needs a stage-1 domain that"
                        + " is not nested (domain " + dom.name + " is not)");
            }
            if (d.external) {
                require(where, d.nic == null, "an external device cannot be a nic: the runner has no session to"
                        + " drive its rings (the external program is the device)");
            } else {
                require(where, !d.attachTimeoutGiven && d.command == null, "attach_timeout and command are for"
                        + " external devices (external: true)");
            }
            ats(where, d, type, iommus.get(d.iommu));
            if (d.nic != null) {
                require(where, d.nic.ringIova != null, "nic needs ring_iova (where its descriptor rings are mapped)");
                require(where, (d.nic.ringIova & ((1L << dom.granuleLg2) - 1)) == 0, "nic ring_iova "
                        + Bits.hex(d.nic.ringIova) + " is not aligned to the " + (1 << dom.granuleLg2 - 10)
                        + " KiB granule of domain " + dom.name);
            }
        }
        for (int i = 0; i < s.steps.size(); i++) {
            Scenario.Step st = s.steps.get(i);
            String where = stepName(s, i);
            if (st == null || st.keys != 1) {
                throw new ScenarioException(where + ": a step is exactly one of map, map_sg, unmap, dma, flush,"
                        + " traffic, nic_receive, inject, clear_faults, wait, expect");
            }
            if (st.map != null) {
                Scenario.Map m = st.map;
                require(where, m.domain != null && m.iova != null && m.size != null, "map needs domain, iova, size");
                known(where, "domain", domains, m.domain);
                target(where, buffers, m, m.size);
            } else if (st.mapSg != null) {
                Scenario.MapSg m = st.mapSg;
                require(where, m.domain != null && m.iova != null && !m.entries.isEmpty(),
                        "map_sg needs domain, iova, entries");
                known(where, "domain", domains, m.domain);
                for (Scenario.SgPart e : m.entries) {
                    require(where, e != null && e.size != null, "each map_sg entry needs a size");
                    target(where, buffers, e, e.size);
                }
            } else if (st.unmap != null) {
                Scenario.Unmap u = st.unmap;
                require(where, u.domain != null && u.iova != null && u.size != null,
                        "unmap needs domain, iova, size");
                known(where, "domain", domains, u.domain);
            } else if (st.flush != null) {
                require(where, st.flush.domain != null, "flush needs a domain");
                known(where, "domain", domains, st.flush.domain);
            } else if (st.inject != null) {
                require(where, !st.inject.target().iommu().isEmpty(), "inject needs target.iommu");
                driven(where, iommus, st.inject.target().iommu());
                try {
                    st.inject.validate();
                } catch (IllegalArgumentException e) {
                    throw new ScenarioException(where + ": inject: " + e.getMessage());
                }
            } else if (st.dma != null) {
                Scenario.Dma d = st.dma;
                require(where, d.device != null && d.write != null && d.iova != null && d.size != null,
                        "dma needs device, op, iova, size");
                internal(where, known(where, "device", devices, d.device), "dma");
                if (d.write) {
                    require(where, d.data != null && d.data.given(), "a dma write needs data (pattern or seed)");
                } else {
                    require(where, d.data == null, "a dma read has no data (check it with expect: read)");
                }
            } else if (st.traffic != null) {
                Scenario.Traffic t = st.traffic;
                require(where, t.device != null && t.iova != null && t.range != null,
                        "traffic needs device, iova, range");
                require(where, t.bounds == 1, "traffic needs exactly one of ops and bytes");
                internal(where, known(where, "device", devices, t.device), "traffic");
                try {
                    t.build();
                } catch (IllegalArgumentException e) {
                    throw new ScenarioException(where + ": traffic: " + e.getMessage(), e);
                }
            } else if (st.nicReceive != null) {
                Scenario.NicReceive n = st.nicReceive;
                require(where, n.device != null && n.packets != null && n.size != null && n.iova != null
                        && n.buffer != null && n.data != null && n.data.given(),
                        "nic_receive needs device, packets, size, iova, buffer, data (pattern or seed)");
                Scenario.Device d = known(where, "device", devices, n.device);
                require(where, d.nic != null, "device " + d.name + " is not a NIC (give it a nic: section)");
                Scenario.Domain dom = domains.get(d.domain);
                long slot = Bits.alignUp(n.size, dom.granuleLg2);
                require(where, (n.iova & ((1L << dom.granuleLg2) - 1)) == 0, "iova " + Bits.hex(n.iova) + " is not aligned to the "
                        + (1 << dom.granuleLg2 - 10) + " KiB granule of domain " + dom.name);
                Scenario.Buffer b = known(where, "buffer", buffers, n.buffer);
                require(where, b.size >= slot, "buffer " + b.name + " (" + b.size + " bytes) cannot hold one "
                        + slot + "-byte receive buffer");
            } else if (st.wait != null) {
                Scenario.Wait w = st.wait;
                require(where, w.device != null && w.conditions == 1, "wait needs a device and exactly one of"
                        + " attached: true, detached: true, dma_ops: N (and optionally a timeout)");
                Scenario.Device d = known(where, "device", devices, w.device);
                require(where, d.external, "wait is for external devices, and " + d.name + " is not one (the"
                        + " runner's own devices are done when their step is)");
            } else if (st.clearFaults != null) {
                String label = st.clearFaults.label;
                boolean injectedBefore = false;
                for (int j = 0; j < i; j++) {
                    Scenario.Step prev = s.steps.get(j);
                    injectedBefore |= prev != null && prev.inject != null
                            && (label == null || label.equals(prev.inject.label()));
                }
                require(where, injectedBefore, label == null ? "clear_faults: no inject step comes before it"
                        : "clear_faults: no inject step before it has label '" + label + "'");
            } else {
                expect(where, st.expect, iommus, buffers, devices);
            }
        }
    }

    private static void expect(String where, Scenario.Expect e, HashMap<String, IommuSpec> iommus,
            HashMap<String, Scenario.Buffer> buffers, HashMap<String, Scenario.Device> devices) {
        if (e == null || e.keys != 1) {
            throw new ScenarioException(where + ": an expect is exactly one of memory, read, fault, events,"
                    + " counter, device_counter, sanitizer");
        }
        if (e.memory != null) {
            Scenario.MemoryExpect m = e.memory;
            require(where, m.buffer != null && m.size != null && m.equals != null && m.equals.given(),
                    "expect memory needs buffer, size, equals (pattern or seed)");
            Scenario.Buffer b = known(where, "buffer", buffers, m.buffer);
            require(where, m.offset + m.size <= b.size && m.offset + m.size > 0,
                    "offset + size runs past buffer " + b.name + " (" + b.size + " bytes)");
        } else if (e.read != null) {
            require(where, e.read.device != null && e.read.equals != null && e.read.equals.given(),
                    "expect read needs device and equals (pattern or seed)");
            internal(where, known(where, "device", devices, e.read.device), "expect read");
        } else if (e.fault != null) {
            require(where, e.fault.device != null && e.fault.kind != null, "expect fault needs device and kind");
            internal(where, known(where, "device", devices, e.fault.device), "expect fault");
        } else if (e.events != null) {
            require(where, e.events.iommu != null && e.events.type != null && e.events.count != null,
                    "expect events needs iommu, type, count");
            IommuType k = driven(where, iommus, e.events.iommu);
            boolean smmuName = Counters.smmuEventType(e.events.typeName) >= 0;
            require(where, smmuName == (k == IommuType.SMMUV3), "type " + e.events.typeName + " is "
                    + (smmuName ? "an SMMUv3 event type" : "a VT-d fault reason") + ", and " + e.events.iommu
                    + " is " + k);
        } else if (e.deviceCounter != null) {
            Scenario.DeviceCounterExpect c = e.deviceCounter;
            require(where, c.device != null && c.name != null && (c.min != null || c.max != null),
                    "expect device_counter needs device, name and min and/or max");
            Scenario.Device d = known(where, "device", devices, c.device);
            require(where, !c.name.startsWith("rx_") || d.nic != null, c.name + " is a NIC counter and "
                    + d.name + " is not a NIC");
            require(where, !c.name.startsWith("atc_") || d.ats && !d.external, c.name + " is a counter of the ATC"
                    + " of an ATS device the runner drives, and " + d.name + (d.external ? " is external (its"
                    + " program keeps its ATC)" : " has no ats: true"));
            require(where, c.min == null || c.max == null || c.min <= c.max, "min is above max");
        } else if (e.sanitizer != null) {
            Scenario.SanitizerExpect x = e.sanitizer;
            require(where, x.min != null || x.max != null, "expect sanitizer needs min and/or max (and a kind, or"
                    + " none for every kind)");
            require(where, x.min == null || x.max == null || x.min <= x.max, "min is above max");
        } else {
            Scenario.CounterExpect c = e.counter;
            require(where, c.iommu != null && c.name != null && (c.min != null || c.max != null),
                    "expect counter needs iommu, name and min and/or max");
            if (!iommus.containsKey(c.iommu)) {
                throw new ScenarioException(where + ": unknown iommu '" + c.iommu + "' (instances: "
                        + iommus.keySet() + ")");
            }
            require(where, c.min == null || c.max == null || c.min <= c.max, "min is above max");
        }
    }

    /**
     * Checks {@code ats} and {@code atc} of a device: ATS needs an instance that implements it, applies to whole
     * streams, and an external device keeps its own ATC.
     */
    private static void ats(String where, Scenario.Device d, IommuType type, IommuSpec spec) {
        if (!d.ats) {
            require(where, d.atc == null, "atc configures the ATC of an ATS device: add ats: true");
            return;
        }
        if (type == IommuType.VTD) {
            require(where, spec.vtdOrDefaults().dt(), "ats needs device TLBs on " + d.iommu + " (ECAP.DT): give it"
                    + " device_tlb: true in the machine's vtd settings");
        } else {
            require(where, spec.smmuv3OrDefaults().ats(), "ats needs an SMMU that implements ATS (IDR0.ATS): give "
                    + d.iommu + " ats: true in the machine's smmuv3 settings");
        }
        require(where, d.substream == null, "ats applies to a whole stream: the drivers enable ATS (and invalidate"
                + " the ATC) for a device attached without substream, so drop substream or ats");
        if (d.external) {
            require(where, d.atc == null, "atc is for the runner's own ATS devices: an external device keeps its own"
                    + " ATC (the runner only enables ATS on its stream)");
        }
        if (d.atc != null) {
            require(where, !d.atc.delayGiven || d.atc.answer == org.iommuemu.dma.AtcListener.Answer.DELAYED,
                    "atc delay goes with answer: delayed");
        }
    }

    /** Refuses a step the runner can only do with a device it drives itself. */
    private static void internal(String where, Scenario.Device d, String step) {
        require(where, !d.external, step + " needs a device the runner drives, and " + d.name + " is external (its"
                + " program makes the DMA; use wait and expect device_counter with it)");
    }

    private static void target(String where, HashMap<String, Scenario.Buffer> buffers, Scenario.Target t,
            long size) {
        if ((t.buffer == null) == (t.pa == null)) {
            throw new ScenarioException(where + ": give either buffer (and offset) or pa");
        }
        if (t.buffer != null) {
            Scenario.Buffer b = known(where, "buffer", buffers, t.buffer);
            require(where, t.offset + size <= b.size && t.offset + size > 0,
                    "offset + size runs past buffer " + b.name + " (" + b.size + " bytes)");
        } else {
            require(where, t.offset == 0, "offset goes with buffer, not pa");
        }
    }

    static String stepName(Scenario s, int i) {
        int line = i < s.stepLines.size() ? s.stepLines.get(i) : 0;
        return s.source + (line > 0 ? ":" + line : "") + ": steps[" + i + "]";
    }

    private static void require(String where, boolean ok, String message) {
        if (!ok) {
            throw new ScenarioException(where + ": " + message);
        }
    }

    private static <T> T known(String where, String what, HashMap<String, T> map, String name) {
        T t = map.get(name);
        if (t == null) {
            throw new ScenarioException(where + ": unknown " + what + " '" + name + "' ("
                    + (map.isEmpty() ? "none defined" : "defined: " + String.join(", ", new java.util.TreeSet<>(
                            map.keySet()))) + ")");
        }
        return t;
    }

    /** The kind of instance {@code name}, which must exist (every kind has a driver). */
    private static IommuType driven(String where, HashMap<String, IommuSpec> iommus, String name) {
        IommuSpec spec = iommus.get(name);
        if (spec == null) {
            throw new ScenarioException(where + ": unknown iommu '" + name + "' (instances: "
                    + new java.util.TreeSet<>(iommus.keySet()) + ")");
        }
        return spec.type();
    }
}
