package org.iommuemu.it.report;

import static org.assertj.core.api.Assertions.assertThat;

import java.awt.image.BufferedImage;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The HTML report of a real run ({@code iommu-emu run scenarios/nic-receive-strict.yaml --report FILE.html}) opened
 * in headless Chromium from Debian's packages: it renders to a PNG of the requested size that is not blank.
 * Without /usr/bin/chromium the test is skipped loudly, except in CI (CI=true), where it fails: .ci/run installs it.
 */
class ReportScreenshotIT {
    private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    private static final int WIDTH = 1280;
    private static final int HEIGHT = 2000;

    @TempDir
    Path tmp;

    private static Path jar() {
        Path jar = Path.of(System.getProperty("iommuemu.jar", "../device-model/target/iommu-emu.jar"));
        assertThat(jar).as("the runnable jar (built by device-model's package phase)").exists();
        return jar;
    }

    private static Path scenario(String name) {
        Path p = Path.of("..", "scenarios", name);
        return Files.exists(p) ? p : Path.of("scenarios", name);
    }

    private static String run(Path log, List<String> command, int seconds) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(command.get(0) + " did not finish in " + seconds + " s: "
                    + Files.readString(log, StandardCharsets.UTF_8));
        }
        assertThat(p.exitValue()).as("%s exit status; output:%n%s", command.get(0),
                Files.readString(log, StandardCharsets.UTF_8)).isZero();
        return Files.readString(log, StandardCharsets.UTF_8);
    }

    @Test
    void chromiumRendersTheReport() throws Exception {
        if (!Files.isExecutable(CHROMIUM)) {
            String why = "/usr/bin/chromium is not installed (Debian: apt-get install -y chromium); the HTML report"
                    + " screenshot test cannot run";
            if ("true".equals(System.getenv("CI"))) {
                throw new AssertionError(why + " — in CI, .ci/run installs it");
            }
            System.err.println("!!!!! SKIPPED: " + why + " !!!!!");
            Assumptions.assumeTrue(false, why);
        }
        Path html = tmp.resolve("report.html");
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        run(tmp.resolve("run.log"), List.of(java, "-jar", jar().toString(), "run",
                scenario("nic-receive-strict.yaml").toString(), "--report", html.toString()), 120);
        assertThat(html).exists();

        Path png = tmp.resolve("report.png");
        Path profile = Files.createDirectory(tmp.resolve("chromium-profile"));
        run(tmp.resolve("chromium.log"), List.of(CHROMIUM.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + profile, "--screenshot=" + png,
                "--window-size=" + WIDTH + "," + HEIGHT, html.toUri().toString()), 120);
        assertThat(png).exists();
        BufferedImage image = ImageIO.read(png.toFile());
        assertThat(image).as("a PNG ImageIO can read").isNotNull();
        assertThat(image.getWidth()).isEqualTo(WIDTH);
        assertThat(image.getHeight()).isEqualTo(HEIGHT);
        int first = image.getRGB(0, 0);
        long other = 0;
        long green = 0;
        for (int y = 0; y < image.getHeight(); y += 2) {
            for (int x = 0; x < image.getWidth(); x += 2) {
                int rgb = image.getRGB(x, y);
                if (rgb != first) {
                    other++;
                }
                int r = (rgb >> 16) & 0xFF;
                int g = (rgb >> 8) & 0xFF;
                int b = rgb & 0xFF;
                if (g > 100 && g > r + 40 && g > b + 20) {
                    green++; // the hit-rate bars and the PASS cells
                }
            }
        }
        assertThat(other).as("not one colour: the page rendered").isGreaterThan(10_000);
        assertThat(green).as("the green hit-rate bars and PASS cells are drawn").isGreaterThan(500);
        Path keep = Path.of("target", "report-screenshot.png");
        Files.createDirectories(keep.getParent());
        Files.copy(png, keep, StandardCopyOption.REPLACE_EXISTING);
    }
}
