package org.iommuemu.core.driver.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class IdAllocatorTest {
    @Test
    void smallestFreeIdFromFirstAndReuseAfterFree() {
        IdAllocator a = new IdAllocator("ASID", 1, 8);
        assertThat(a.allocate()).isEqualTo(1);
        assertThat(a.allocate()).isEqualTo(2);
        assertThat(a.allocate()).isEqualTo(3);
        a.free(2);
        assertThat(a.allocate()).as("the hole is reused").isEqualTo(2);
        assertThat(a.inUse()).isEqualTo(3);
        assertThat(a.capacity()).isEqualTo(255);
    }

    @Test
    void exhaustionAndBadFreesAreClearErrors() {
        IdAllocator a = new IdAllocator("VMID", 1, 2); // ids 1..3
        assertThat(List.of(a.allocate(), a.allocate(), a.allocate())).containsExactly(1, 2, 3);
        assertThatThrownBy(a::allocate).isInstanceOf(IllegalStateException.class)
                .hasMessage("no free VMID: all 3 ids from 1 to 3 are in use");
        assertThatThrownBy(() -> a.free(0)).hasMessage("VMID 0 is not allocated");
        a.free(3);
        assertThatThrownBy(() -> a.free(3)).hasMessage("VMID 3 is not allocated");
        assertThatThrownBy(() -> new IdAllocator("ASID", 0, 17)).hasMessageContaining("1..16 bits");
    }

    @Test
    void concurrentAllocationsNeverShareAnId() throws Exception {
        IdAllocator a = new IdAllocator("ASID", 1, 16);
        Set<Integer> seen = ConcurrentHashMap.newKeySet();
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            Thread th = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int i = 0; i < 2000; i++) {
                    seen.add(a.allocate()); // a duplicate would leave the set short of 8000
                }
            });
            threads.add(th);
            th.start();
        }
        start.countDown();
        for (Thread th : threads) {
            th.join();
        }
        assertThat(seen).hasSize(8000);
        assertThat(a.inUse()).isEqualTo(8000);
    }
}
