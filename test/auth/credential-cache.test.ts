// The memory of verified credentials: one check per distinct credentials, shared by concurrent requests, bounded,
// and forgotten on clear(). `verify` stands for the bcrypt check and counts its calls.
import {describe, expect, test} from 'vitest'
import {createCredentialCache} from '../../src/auth/credential-cache.js'

// A verify function that answers `ok` and counts how often it ran.
function counting(ok: boolean) {
  const verify = async () => {
    verify.calls++
    return ok
  }
  verify.calls = 0
  return verify
}

// A verify function whose answer the test gives later.
function deferred() {
  let answer: (ok: boolean) => void = () => {}
  const verify = () => {
    verify.calls++
    return new Promise<boolean>((resolve) => {
      answer = resolve
    })
  }
  verify.calls = 0
  return {verify, answer: (ok: boolean) => answer(ok)}
}

describe('check', () => {
  test('a success is remembered: the second check does not verify again', async () => {
    const cache = createCredentialCache(10)
    const verify = counting(true)
    expect(await cache.check('alice', 'pw', verify)).toBe(true)
    expect(await cache.check('alice', 'pw', verify)).toBe(true)
    expect(verify.calls).toBe(1)
  })

  test('a failure is not remembered: every wrong guess costs a check', async () => {
    const cache = createCredentialCache(10)
    const verify = counting(false)
    expect(await cache.check('alice', 'guess', verify)).toBe(false)
    expect(await cache.check('alice', 'guess', verify)).toBe(false)
    expect(verify.calls).toBe(2)
  })

  test('concurrent checks of the same credentials share one verification', async () => {
    const cache = createCredentialCache(10)
    const {verify, answer} = deferred()
    const results = Array.from({length: 5}, () => cache.check('alice', 'pw', verify))
    answer(true)
    expect(await Promise.all(results)).toEqual([true, true, true, true, true])
    expect(verify.calls).toBe(1)
  })

  // [remembered user, password] then [other user, password]: none of these may ride on the first success.
  test.each([
    ['another password', ['alice', 'pw'], ['alice', 'pw2']],
    ['another user', ['alice', 'pw'], ['bob', 'pw']],
    ['an empty password', ['alice', 'pw'], ['alice', '']],
    ['the separator moved from user to password', ['a\0b', 'c'], ['a', 'b\0c']],
    ['the separator moved from password to user', ['a', 'b\0c'], ['a\0b', 'c']],
  ])('%s is checked, not taken from memory', async (_, [user, password], [otherUser, otherPassword]) => {
    const cache = createCredentialCache(10)
    expect(await cache.check(user!, password!, counting(true))).toBe(true)
    const other = counting(false)
    expect(await cache.check(otherUser!, otherPassword!, other)).toBe(false)
    expect(other.calls).toBe(1)
  })

  test('concurrent checks of different users do not share a verification', async () => {
    const cache = createCredentialCache(10)
    const alice = deferred()
    const bob = counting(false)
    const aliceResult = cache.check('alice', 'pw', alice.verify)
    expect(await cache.check('bob', 'pw', bob)).toBe(false)
    alice.answer(true)
    expect(await aliceResult).toBe(true)
    expect(bob.calls).toBe(1)
  })
})

describe('clear', () => {
  test('forgets remembered successes', async () => {
    const cache = createCredentialCache(10)
    const verify = counting(true)
    await cache.check('alice', 'pw', verify)
    cache.clear()
    await cache.check('alice', 'pw', verify)
    expect(verify.calls).toBe(2)
  })

  test('a check running when clear() is called answers its caller but is not remembered', async () => {
    const cache = createCredentialCache(10)
    const {verify, answer} = deferred()
    const result = cache.check('alice', 'pw', verify)
    cache.clear()
    answer(true)
    expect(await result).toBe(true)
    const after = counting(false)
    expect(await cache.check('alice', 'pw', after)).toBe(false)
    expect(after.calls).toBe(1)
  })

  test('a check after clear() does not join one that started before', async () => {
    const cache = createCredentialCache(10)
    const before = deferred()
    const first = cache.check('alice', 'pw', before.verify)
    cache.clear()
    const after = counting(false)
    expect(await cache.check('alice', 'pw', after)).toBe(false)
    expect(after.calls).toBe(1)
    before.answer(true)
    expect(await first).toBe(true)
  })
})

describe('bound', () => {
  test('keeps at most maxEntries successes, dropping the least recently used', async () => {
    const cache = createCredentialCache(3)
    for (const user of ['a', 'b', 'c']) await cache.check(user, 'pw', counting(true))
    await cache.check('a', 'pw', counting(true)) // a is now the most recently used
    await cache.check('d', 'pw', counting(true)) // drops b
    const calls: Record<string, number> = {}
    for (const user of ['a', 'c', 'd', 'b']) {
      const verify = counting(true)
      await cache.check(user, 'pw', verify)
      calls[user] = verify.calls
    }
    expect(calls).toEqual({a: 0, c: 0, d: 0, b: 1})
  })
})
