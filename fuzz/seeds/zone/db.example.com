$ORIGIN example.com.
$TTL 3600
@       IN SOA ns1 hostmaster ( 2026120501 7200 3600 1209600 3600 )
        IN NS  ns1
ns1     IN A   192.0.2.1
web-01  IN A   192.0.2.10
        IN AAAA 2001:db8::10
www     IN CNAME web-01
$GENERATE 1-4 host-$ A 192.0.2.$
10.2.0.192.in-addr.arpa. IN PTR web-01.example.com.
_http._tcp IN SRV 0 5 80 web-01
txt     IN TXT "v=spf1 ip4:192.0.2.10 -all"
$INCLUDE other.zone
