package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.StreamClaims;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.smmuv3.SmmuV3Device;
import org.junit.jupiter.api.Test;

class SessionRegistryTest {
    private final SparseRam ram = SparseRam.withDefaultRam();
    private final SmmuV3Device smmu = new SmmuV3Device("smmu0", SmmuV3Config.defaults(), ram, new InterruptHub(ram));
    private final StreamClaims claims = new StreamClaims();

    @Test
    void idsAreUniqueUnguessableAndBoundToTheirConnection() {
        SessionRegistry r = new SessionRegistry(claims, 8);
        Connection c = new Connection(1, null);
        Session a = r.attach(c, "a", smmu, 1, false);
        Session b = r.attach(c, "b", smmu, 2, false);
        assertThat(a.id).isNotEqualTo(b.id).isNotZero();
        assertThat(a.id >>> SessionRegistry.SLOT_BITS).as("random high bits").isNotZero();
        assertThat(r.lookup(a.id, c)).isSameAs(a);
        assertThatThrownBy(() -> r.lookup(a.id, new Connection(2, null))).isInstanceOf(BusError.class)
                .hasMessageContaining("another client connection");
        r.detach(a.id, c);
        assertThatThrownBy(() -> r.lookup(a.id, c)).isInstanceOf(BusError.class).hasMessageContaining("not a live");
        Session a2 = r.attach(c, "a", smmu, 1, false);
        assertThat(a2.id).as("a reused slot gets a new id").isNotEqualTo(a.id);
        assertThatThrownBy(() -> r.lookup(a.id, c)).as("the old id stays dead").isInstanceOf(BusError.class);
    }

    @Test
    void releaseAllFreesEverySessionAndStreamIdOfAConnection() {
        SessionRegistry r = new SessionRegistry(claims, 8);
        Connection gone = new Connection(1, null);
        Connection stays = new Connection(2, null);
        r.attach(gone, "a", smmu, 1, false);
        r.attach(gone, "b", smmu, 2, false);
        r.attach(stays, "c", smmu, 3, false);
        assertThat(r.releaseAll(gone)).isEqualTo(2);
        assertThat(r.live()).isEqualTo(1);
        assertThat(claims.size()).isEqualTo(1);
        assertThat(claims.holder("smmu0", 1)).isNull();
    }

    @Test
    void attachOnAClosedConnectionLeavesNothingBehind() {
        SessionRegistry r = new SessionRegistry(claims, 8);
        Connection c = new Connection(1, null);
        c.markClosed();
        assertThatThrownBy(() -> r.attach(c, "late", smmu, 1, false)).isInstanceOf(BusError.class)
                .hasMessageContaining("closed during Attach");
        assertThat(r.live()).isZero();
        assertThat(claims.size()).isZero();
    }

    @Test
    void concurrentAttachAndDetachKeepTheBooksStraight() throws Exception {
        int threads = 8;
        int rounds = 2000;
        SessionRegistry r = new SessionRegistry(claims, 64);
        Set<Long> ids = ConcurrentHashMap.newKeySet();
        CyclicBarrier start = new CyclicBarrier(threads);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new java.util.ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int sid = t;
                done.add(pool.submit(() -> {
                    Connection c = new Connection(sid, null);
                    start.await();
                    for (int i = 0; i < rounds; i++) {
                        Session s = r.attach(c, "t", smmu, sid, false);
                        assertThat(ids.add(s.id)).isTrue();
                        assertThat(r.lookup(s.id, c)).isSameAs(s);
                        r.detach(s.id, c);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(ids).hasSize(threads * rounds);
        assertThat(r.live()).isZero();
        assertThat(claims.size()).isZero();
    }
}
