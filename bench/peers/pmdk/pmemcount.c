/*
 * pmemcount: an LD_PRELOAD shim that counts what libpmemobj asks of libpmem
 * (flushes and the lines they cover, drains = SFENCEs, persists, the
 * flushing memcpy/memmove/memset), so that the work per transaction of the
 * PMDK peer can be compared with farmem's. Calls made from inside another
 * counted call (pmem_persist calls pmem_flush and pmem_drain) are counted
 * apart as "nested". Counts go to stderr at exit; divide by the txs that
 * kvbench prints.
 *
 *     cc -O2 -shared -fPIC -o pmemcount.so pmemcount.c -ldl
 *     PMEM_IS_PMEM_FORCE=1 LD_PRELOAD=./pmemcount.so ./kvbench /dev/shm/p 1 256 1000
 *
 * Measured with libpmemobj 1.12.1 (docs/PMEM.md): per transaction 1 flush
 * of 5 lines, 3 drains, 1 persist of 1 line, 3 memcpys of 5 lines in all,
 * 1 draining memset of 1 line; nested: 1 flush and 2 drains. That is 12
 * lines written back and 5 SFENCEs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>
#include <stddef.h>
static __thread int depth;
static _Atomic uint64_t top[6], nest[6], lns[6];
static const char *nm[6]={"flush","drain","persist","memcpy","memmove","memset"};
static uint64_t lines(const void *a, size_t n){ uintptr_t s=(uintptr_t)a&~63ul, e=((uintptr_t)a+n+63)&~63ul; return (e-s)/64; }
#define CNT(i,a,n) do{ if(depth) nest[i]++; else {top[i]++; lns[i]+=lines(a,n);} }while(0)
void pmem_flush(const void *a, size_t n){ static void (*f)(const void*,size_t); if(!f) f=dlsym(RTLD_NEXT,"pmem_flush"); CNT(0,a,n); depth++; f(a,n); depth--;}
void pmem_drain(void){ static void (*f)(void); if(!f) f=dlsym(RTLD_NEXT,"pmem_drain"); CNT(1,0,0); depth++; f(); depth--;}
void pmem_persist(const void *a, size_t n){ static void (*f)(const void*,size_t); if(!f) f=dlsym(RTLD_NEXT,"pmem_persist"); CNT(2,a,n); depth++; f(a,n); depth--;}
void *pmem_memcpy(void *d,const void*s,size_t n,unsigned fl){ static void*(*f)(void*,const void*,size_t,unsigned); if(!f) f=dlsym(RTLD_NEXT,"pmem_memcpy"); CNT(3,d,n); depth++; void*r=f(d,s,n,fl); depth--; return r;}
void *pmem_memmove(void *d,const void*s,size_t n,unsigned fl){ static void*(*f)(void*,const void*,size_t,unsigned); if(!f) f=dlsym(RTLD_NEXT,"pmem_memmove"); CNT(4,d,n); depth++; void*r=f(d,s,n,fl); depth--; return r;}
void *pmem_memset(void *d,int c,size_t n,unsigned fl){ static void*(*f)(void*,int,size_t,unsigned); if(!f) f=dlsym(RTLD_NEXT,"pmem_memset"); CNT(5,d,n); depth++; void*r=f(d,c,n,fl); depth--; return r;}
__attribute__((destructor)) static void fin(void){ for(int i=0;i<6;i++) fprintf(stderr,"pmemcount %s: top %lu (lines %lu) nested %lu\n", nm[i], top[i], lns[i], nest[i]);}
