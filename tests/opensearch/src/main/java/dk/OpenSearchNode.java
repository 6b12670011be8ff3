package dk;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.Version;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.join.ParentJoinPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.script.mustache.MustachePlugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch node for dataknobs' tests, run inside this JVM with the modules of a
 * distribution loaded from the classpath as plugins. It binds HTTP (and its transport port)
 * to 127.0.0.1 only, keeps its data, config and log configuration under one home directory,
 * and writes {@code <home>/pid} when it starts and {@code <home>/ready} (the HTTP URL) once it
 * answers requests.
 *
 * <p>System properties: {@code dk.opensearch.home} (default /var/tmp/dataknobs-opensearch/node),
 * {@code dk.opensearch.port} (HTTP, default 9200), {@code dk.opensearch.transport.port} (default
 * 9300-9399). Started by scripts/opensearch.sh, which also sends its output to a log file.
 */
public final class OpenSearchNode {

    /** The modules the tests rely on: HTTP, analysis, painless, by-query APIs, extra field types. */
    private static final List<Class<? extends Plugin>> MODULES = Arrays.asList(
        Netty4Plugin.class,
        CommonAnalysisPlugin.class,
        PainlessPlugin.class,
        ReindexPlugin.class,
        MapperExtrasPlugin.class,
        ParentJoinPlugin.class,
        MustachePlugin.class
    );

    /** Node subclass only to reach the constructor that takes classpath plugins. */
    private static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    /** Logging to standard output (the launcher script redirects it to the node's log file). */
    private static final String LOG4J2_PROPERTIES = String.join("\n",
        "status = error",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
        "rootLogger.level = info",
        "rootLogger.appenderRef.console.ref = console",
        "");

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(System.getProperty("dk.opensearch.home", "/var/tmp/dataknobs-opensearch/node"))
            .toAbsolutePath();
        String port = System.getProperty("dk.opensearch.port", "9200");
        String transportPort = System.getProperty("dk.opensearch.transport.port", "9300-9399");
        Path config = home.resolve("config");
        Path ready = home.resolve("ready");
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.deleteIfExists(ready);
        Files.write(home.resolve("pid"), (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8));
        Files.write(config.resolve("log4j2.properties"), LOG4J2_PROPERTIES.getBytes(StandardCharsets.UTF_8));

        Settings settings = Settings.builder()
            .put("cluster.name", "dataknobs-test")
            .put("node.name", "dataknobs-test-node")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            // Loopback only, for both HTTP and the (unused) node-to-node transport.
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", transportPort)
            .put("discovery.type", "single-node")
            // A full disk on a test machine must not make shards unassignable or indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .build();

        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> "dataknobs-test-node");
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName("dataknobs-test-node");
        LogConfigurator.configure(environment);

        long started = System.nanoTime();
        Node node = new ClasspathNode(environment, MODULES);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                Files.deleteIfExists(ready);
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "dataknobs-opensearch-shutdown"));
        try {
            node.start();
            // One node: no replicas, so new indices are green. The default replica count is read
            // from the cluster's (persistent) settings, not from the node's.
            node.client().admin().cluster().prepareUpdateSettings()
                .setPersistentSettings(Settings.builder()
                    .put("cluster.default_number_of_replicas", 0)
                    // The test suites make thousands of small indexes in one run.
                    .put("cluster.max_shards_per_node", 100000))
                .get();
        } catch (Throwable t) {
            System.err.println("dataknobs-opensearch: the node failed to start");
            t.printStackTrace();
            System.exit(1);
        }

        String url = "http://127.0.0.1:" + port;
        Path tmp = home.resolve("ready.tmp");
        Files.write(tmp, (url + "\n").getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, ready, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.printf("dataknobs-opensearch: READY %s (OpenSearch %s, pid %d, started in %.1f s)%n",
            url, Version.CURRENT, ProcessHandle.current().pid(), (System.nanoTime() - started) / 1e9);
        System.out.flush();

        // The node's threads are daemons: keep the JVM alive until SIGTERM/SIGINT runs the hook.
        stopped.await();
    }
}
