package dk;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.util.VersionInfo;
import org.apache.log4j.Level;
import org.apache.log4j.LogManager;
import org.apache.log4j.PropertyConfigurator;

import sun.misc.Signal;

/**
 * A one-datanode HDFS (Hadoop's MiniDFSCluster: a namenode and a datanode in this JVM) for
 * dataknobs' tests. Everything listens on 127.0.0.1: the namenode's RPC port (default 9000), its
 * HTTP port with WebHDFS (default 9870), and the datanode's data-transfer, HTTP and IPC ports
 * (ephemeral unless set). The datanode registers as 127.0.0.1, so clients speaking the native
 * protocols and WebHDFS redirects reach it on loopback.
 *
 * <p>Security is "simple" (the client says who it is) with HDFS permissions and ACLs on; the
 * superuser is the OS user running this JVM. The file system is formatted afresh on every
 * start, then gets {@code /warehouse} and {@code /volnux} (mode 777) and {@code /dk_private}
 * (mode 700, the superuser's). The node writes {@code <home>/pid} when it starts and
 * {@code <home>/ready} (three lines: the hdfs:// URL, the WebHDFS URL, the superuser) once it is
 * set up, prints a line with {@code HDFS READY} to standard output, and runs until SIGTERM or
 * SIGINT (with {@code --exit-on-stdin-eof}: also until its standard input is closed), then
 * shuts the cluster down.
 *
 * <p>Settings, each a system property or else an environment variable: {@code dk.hdfs.home} /
 * DK_HDFS_DIR (default /var/tmp/dataknobs-hdfs; the file system is under its data/),
 * {@code dk.hdfs.port} / DK_HDFS_PORT (namenode RPC, default 9000), {@code dk.hdfs.http.port} /
 * DK_HDFS_HTTP_PORT (namenode HTTP and WebHDFS, default 9870), {@code dk.hdfs.datanode.port} /
 * DK_HDFS_DATANODE_PORT (data transfer, default 0: any free port), {@code dk.hdfs.verbose} /
 * DK_HDFS_VERBOSE (1: keep Hadoop's INFO log, with the audit log, after start-up),
 * {@code dk.hdfs.conf} / DK_HDFS_CONF (more Hadoop settings, "key=value key=value", applied
 * last). Arguments
 * {@code --port N}, {@code --http-port N}, {@code --home DIR} override them. Started by
 * scripts/hdfs.sh, which sends its output to a log file.
 */
public final class HdfsNode {

    private static final String HOST = "127.0.0.1";

    /** Directories made after the format, with their modes (owned by the superuser). */
    private static final List<String[]> DIRECTORIES = Arrays.asList(
        new String[] {"/warehouse", "777"},
        new String[] {"/volnux", "777"},
        new String[] {"/dk_private", "700"});

    private static String setting(String property, String env, String fallback) {
        String v = System.getProperty(property);
        if (v == null || v.isEmpty()) {
            v = System.getenv(env);
        }
        return v == null || v.isEmpty() ? fallback : v;
    }

    /** Log4j 1.x (reload4j) to standard output, which the launcher script sends to a file. */
    private static void configureLogging() {
        Properties p = new Properties();
        p.setProperty("log4j.rootLogger", "INFO, out");
        p.setProperty("log4j.appender.out", "org.apache.log4j.ConsoleAppender");
        p.setProperty("log4j.appender.out.target", "System.out");
        p.setProperty("log4j.appender.out.layout", "org.apache.log4j.PatternLayout");
        p.setProperty("log4j.appender.out.layout.ConversionPattern", "%d{ISO8601} %-5p [%t] %c{2}: %m%n");
        // Per-request lines (audit, block allocations, block transfers) would flood the log.
        p.setProperty("log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit", "WARN");
        p.setProperty("log4j.logger.org.apache.hadoop.hdfs.StateChange", "WARN");
        p.setProperty("log4j.logger.BlockStateChange", "WARN");
        p.setProperty("log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace", "WARN");
        // Warns at length that there is no native library; the pure-Java code paths are used.
        p.setProperty("log4j.logger.org.apache.hadoop.util.NativeCodeLoader", "ERROR");
        PropertyConfigurator.configure(p);
    }

    public static void main(String[] args) throws Exception {
        String homeArg = null;
        String portArg = null;
        String httpPortArg = null;
        boolean exitOnStdinEof = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--home": homeArg = args[++i]; break;
                case "--port": portArg = args[++i]; break;
                case "--http-port": httpPortArg = args[++i]; break;
                case "--exit-on-stdin-eof": exitOnStdinEof = true; break;
                default:
                    System.err.println("dataknobs-hdfs: unknown argument " + args[i]
                        + " (known: --home DIR, --port N, --http-port N, --exit-on-stdin-eof)");
                    System.exit(2);
            }
        }
        Path home = Paths.get(homeArg != null ? homeArg
            : setting("dk.hdfs.home", "DK_HDFS_DIR", "/var/tmp/dataknobs-hdfs")).toAbsolutePath();
        int port = Integer.parseInt(portArg != null ? portArg : setting("dk.hdfs.port", "DK_HDFS_PORT", "9000"));
        int httpPort = Integer.parseInt(httpPortArg != null ? httpPortArg
            : setting("dk.hdfs.http.port", "DK_HDFS_HTTP_PORT", "9870"));
        int dataPort = Integer.parseInt(setting("dk.hdfs.datanode.port", "DK_HDFS_DATANODE_PORT", "0"));
        boolean verbose = "1".equals(setting("dk.hdfs.verbose", "DK_HDFS_VERBOSE", "0"));
        String extraConf = setting("dk.hdfs.conf", "DK_HDFS_CONF", "");

        Path data = home.resolve("data");
        Path ready = home.resolve("ready");
        Files.createDirectories(home);
        Files.createDirectories(home.resolve("tmp"));
        Files.deleteIfExists(ready);
        Files.write(home.resolve("pid"), (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8));
        configureLogging();

        String rpcUrl = "hdfs://" + HOST + ":" + port;
        String httpUrl = "http://" + HOST + ":" + httpPort;

        Configuration conf = new HdfsConfiguration();
        conf.set("fs.defaultFS", rpcUrl);
        conf.set("hadoop.tmp.dir", home.resolve("tmp").toString());
        // Who the client says it is (no Kerberos); permissions and ACLs are enforced.
        conf.set("hadoop.security.authentication", "simple");
        conf.setBoolean("dfs.permissions.enabled", true);
        conf.setBoolean("dfs.namenode.acls.enabled", true);
        conf.setBoolean("dfs.webhdfs.enabled", true);
        conf.setInt("dfs.replication", 1);
        // Namenode on loopback (MiniDFSCluster binds 127.0.0.1 with the ports given below).
        conf.set("dfs.namenode.rpc-address", HOST + ":" + port);
        conf.set("dfs.namenode.http-address", HOST + ":" + httpPort);
        // The datanode on loopback, registered under the name 127.0.0.1: the address clients are
        // given for it (native protocol and WebHDFS redirects) whether they use names or IPs.
        conf.set("dfs.datanode.hostname", HOST);
        conf.set("dfs.datanode.address", HOST + ":" + dataPort);
        conf.set("dfs.datanode.http.address", HOST + ":0");
        conf.set("dfs.datanode.ipc.address", HOST + ":0");
        conf.setBoolean("dfs.client.use.datanode.hostname", true);
        conf.setBoolean("dfs.datanode.use.datanode.hostname", true);
        // One datanode: never wait for more, never look for a second one to write to.
        conf.set("dfs.client.block.write.replace-datanode-on-failure.enable", "false");
        conf.setInt("dfs.namenode.safemode.extension", 0);
        // Anything else, e.g. for an experiment: DK_HDFS_CONF="key=value key=value".
        for (String kv : extraConf.trim().split("[\\s,]+")) {
            if (kv.isEmpty()) {
                continue;
            }
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                System.err.println("dataknobs-hdfs: ignoring " + kv + " in DK_HDFS_CONF (not key=value)");
                continue;
            }
            conf.set(kv.substring(0, eq), kv.substring(eq + 1));
            System.out.println("dataknobs-hdfs: " + kv.substring(0, eq) + " = " + kv.substring(eq + 1));
        }

        long started = System.nanoTime();
        MiniDFSCluster cluster;
        String superuser;
        try {
            superuser = UserGroupInformation.getCurrentUser().getShortUserName();
            cluster = new MiniDFSCluster.Builder(conf, data.toFile())
                .nameNodePort(port)
                .nameNodeHttpPort(httpPort)
                .numDataNodes(1)
                .format(true)
                .checkDataNodeAddrConfig(true)
                .checkDataNodeHostConfig(true)
                .build();
            cluster.waitActive();
            DistributedFileSystem fs = cluster.getFileSystem();
            for (String[] dir : DIRECTORIES) {
                org.apache.hadoop.fs.Path path = new org.apache.hadoop.fs.Path(dir[0]);
                fs.mkdirs(path);
                // mkdirs applies the umask (022): set the mode afterwards.
                fs.setPermission(path, new FsPermission(dir[1]));
            }
        } catch (Throwable t) {
            System.err.println("dataknobs-hdfs: the cluster failed to start");
            t.printStackTrace();
            System.exit(1);
            return;
        }

        // SIGTERM/SIGINT stop the cluster from the main thread (below), not from a JVM shutdown
        // hook: during the JVM's shutdown Hadoop's own hook manager refuses the datanode's
        // clean-up. The hook only removes the ready file when the JVM ends some other way.
        CountDownLatch stop = new CountDownLatch(1);
        for (String name : new String[] {"TERM", "INT"}) {
            Signal.handle(new Signal(name), sig -> stop.countDown());
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                Files.deleteIfExists(ready);
            } catch (IOException e) {
                // Nothing more to do on the way out.
            }
        }, "dataknobs-hdfs-shutdown"));

        if (!verbose) {
            // Start-up is logged at INFO (it tells why a start failed); afterwards only problems
            // (the HTTP request logs and the rest would add lines for every request).
            LogManager.getRootLogger().setLevel(Level.WARN);
        } else {
            LogManager.getLogger("org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit").setLevel(Level.INFO);
        }

        Path tmp = home.resolve("ready.tmp");
        Files.write(tmp, (rpcUrl + "\n" + httpUrl + "\n" + superuser + "\n").getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, ready, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.printf("dataknobs-hdfs: HDFS READY %s webhdfs %s superuser %s (Hadoop %s, datanode %s, pid %d,"
                + " started in %.1f s)%n",
            rpcUrl, httpUrl, superuser, VersionInfo.getVersion(),
            cluster.getDataNodes().get(0).getDatanodeId().getXferAddr(),
            ProcessHandle.current().pid(), (System.nanoTime() - started) / 1e9);
        System.out.flush();

        if (exitOnStdinEof) {
            Thread watcher = new Thread(() -> {
                try {
                    InputStream in = System.in;
                    byte[] buf = new byte[256];
                    while (in.read(buf) >= 0) {
                        // Anything read is ignored; only the end matters.
                    }
                } catch (IOException e) {
                    // Treated as the end.
                }
                stop.countDown();
            }, "dataknobs-hdfs-stdin");
            watcher.setDaemon(true);
            watcher.start();
        }

        stop.await();
        System.out.println("dataknobs-hdfs: stopping");
        System.out.flush();
        Files.deleteIfExists(ready);
        int status = 0;
        try {
            cluster.shutdown();
        } catch (Throwable e) {
            e.printStackTrace();
            status = 1;
        }
        System.exit(status);
    }

    private HdfsNode() {}
}
