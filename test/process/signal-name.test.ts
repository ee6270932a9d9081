// Signal numbers to names: one table for the launcher's reports and for bwrap's 128 + N exit codes.
import {describe, expect, test} from 'vitest'
import {signalName} from '../../src/process/kill-tree.js'

describe('signalName', () => {
  test.each([
    [9, 'SIGKILL'],
    [15, 'SIGTERM'],
    [6, 'SIGABRT'], // also SIGIOT: the first name listed wins
    [29, 'SIGIO'], // also SIGPOLL
    [0, null],
    [200, null],
  ])('%i is %s', (number, name) => {
    expect(signalName(number)).toBe(name)
  })
})
