package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.junit.jupiter.api.Test;

class DmaEngineTest {
    private static final long RAM = 0x8000_0000L;
    private final SparseRam memory = new SparseRam(List.of(new RamRegion(RAM, 1 << 24)));
    private final DmaEngine engine = new DmaEngine(memory);
    private final DmaOutcome out = new DmaOutcome();

    /** Maps iova page n to RAM page (n * 7 mod 64): consecutive iova pages are scattered. Iova page 40 faults. */
    private static class Scatter implements IommuDevice {
        int translations;

        @Override
        public Translation translate(int streamId, int substreamId, long iova, int access, Translation t) {
            translations++;
            long page = iova >>> 12;
            if (page == 40) {
                return t.fault(FaultType.TRANSLATION, 0x10, "page 40 is not mapped");
            }
            if (page == 50 && Access.isWrite(access)) {
                return t.fault(FaultType.PERMISSION, 0x13, "page 50 is read-only");
            }
            long pa = page == 60 ? 0x1000_0000L : RAM + ((page * 7) % 64) * 4096;
            return t.ok(pa + (iova & 0xFFF), 4096 - (iova & 0xFFF));
        }

        @Override
        public String name() {
            return "scatter";
        }

        @Override
        public IommuType type() {
            return IommuType.SMMUV3;
        }

        @Override
        public long mmioSize() {
            return 0x1000;
        }

        @Override
        public long mmioRead(long offset, int width) {
            return 0;
        }

        @Override
        public void mmioWrite(long offset, int width, long value) {}

        @Override
        public int streamIdBits() {
            return 8;
        }

        @Override
        public int substreamIdBits() {
            return 0;
        }

        @Override
        public List<String> features() {
            return List.of();
        }

        @Override
        public boolean translationModelled() {
            return true;
        }

        @Override
        public void reset() {}
    }

    @Test
    void aDmaIsSplitAtEveryTranslationBoundary() throws Exception {
        Scatter dev = new Scatter();
        byte[] data = new byte[5 * 4096];
        new Random(3).nextBytes(data);
        long iova = 2 * 4096 + 100;
        engine.write(dev, 1, -1, iova, data, 0, data.length, 0, out);
        assertThat(out.isOk()).isTrue();
        assertThat(out.bytesDone()).isEqualTo(data.length);
        assertThat(dev.translations).as("six pages touched").isEqualTo(6);
        for (int i = 0; i < data.length; i++) {
            long va = iova + i;
            long pa = RAM + (((va >>> 12) * 7) % 64) * 4096 + (va & 0xFFF);
            assertThat((byte) memory.read8(pa)).isEqualTo(data[i]);
        }
        byte[] back = new byte[data.length];
        engine.read(dev, 1, -1, iova, back, 0, back.length, 0, out);
        assertThat(back).isEqualTo(data);
    }

    @Test
    void aTranslationFaultStopsTheDmaAtThePageItHit() {
        byte[] buf = new byte[3 * 4096];
        engine.read(new Scatter(), 1, -1, 39 * 4096 + 96, buf, 0, buf.length, 0, out);
        assertThat(out.status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(out.faultType()).isEqualTo(FaultType.TRANSLATION);
        assertThat(out.code()).isEqualTo(0x10);
        assertThat(out.faultAddress()).isEqualTo(40 * 4096);
        assertThat(out.bytesDone()).isEqualTo(4096 - 96);
    }

    @Test
    void theWriteBitReachesTheIommu() {
        byte[] buf = new byte[16];
        engine.read(new Scatter(), 1, -1, 50 * 4096, buf, 0, 16, Access.WRITE, out);
        assertThat(out.isOk()).as("a read stays a read even if the caller passed WRITE").isTrue();
        engine.write(new Scatter(), 1, -1, 50 * 4096, buf, 0, 16, 0, out);
        assertThat(out.faultType()).isEqualTo(FaultType.PERMISSION);
    }

    @Test
    void anOutputAddressOutsideRamIsAnExternalAbort() {
        byte[] buf = new byte[64];
        engine.read(new Scatter(), 1, -1, 60 * 4096 - 32, buf, 0, 64, 0, out);
        assertThat(out.faultType()).isEqualTo(FaultType.EXTERNAL_ABORT);
        assertThat(out.faultAddress()).isEqualTo(60 * 4096);
        assertThat(out.bytesDone()).isEqualTo(32);
        assertThat(out.description()).contains("0x10000000").contains("not RAM");
    }

    @Test
    void unboundedBypassIsOneChunkUntilRamEnds() {
        IommuDevice bypass = new Scatter() {
            @Override
            public Translation translate(int streamId, int substreamId, long iova, int access, Translation t) {
                translations++;
                return t.ok(iova, -1L);
            }
        };
        long end = RAM + (1 << 24);
        byte[] buf = new byte[3 * 4096];
        engine.write(bypass, 1, -1, end - 5000, buf, 0, buf.length, 0, out);
        assertThat(out.faultType()).isEqualTo(FaultType.EXTERNAL_ABORT);
        assertThat(out.bytesDone()).isEqualTo(5000);
        assertThat(out.faultAddress()).isEqualTo(end);
    }

    @Test
    void theAfterFaultHookRunsOnTranslationFaultsOnly() {
        int[] runs = new int[1];
        engine.afterFault(() -> runs[0]++);
        byte[] buf = new byte[64];
        engine.read(new Scatter(), 1, -1, 3 * 4096, buf, 0, 64, 0, out);
        assertThat(out.isOk()).isTrue();
        assertThat(runs[0]).as("no fault, no hook").isZero();
        engine.read(new Scatter(), 1, -1, 40 * 4096 - 32, buf, 0, 64, 0, out);
        assertThat(out.faultType()).isEqualTo(FaultType.TRANSLATION);
        assertThat(runs[0]).as("after the device returned the fault").isEqualTo(1);
    }

    @Test
    void anUnimplementedConfigurationStopsTheDmaWithTheDevicesWords() {
        IommuDevice partial = new Scatter() {
            @Override
            public Translation translate(int streamId, int substreamId, long iova, int access, Translation t) {
                translations++;
                return (iova >>> 12) == 2 ? t.unimplemented("stalls are not modelled")
                        : t.ok(RAM + (iova & 0xFFFF), 4096 - (iova & 0xFFF));
            }
        };
        byte[] buf = new byte[8192];
        engine.write(partial, 1, -1, 4096, buf, 0, buf.length, 0, out);
        assertThat(out.isOk()).isFalse();
        assertThat(out.bytesDone()).as("the page before it moved").isEqualTo(4096);
        assertThat(out.description()).isEqualTo("stalls are not modelled");
    }
}
